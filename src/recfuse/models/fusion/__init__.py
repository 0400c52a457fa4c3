"""Long/short-term interest fusion, with item text, ratings and time.

Every history event enters as the sum of three parts, one per interest
dimension:

* **content**: the item tower, an ID embedding plus a learned projection of
  the item's frozen text embedding, mixed per dimension by a learned gate.
  An item with no training events (held out, or added after training) has
  no ID part: its vector is the text part alone, plus an ID part predicted
  from its text.
* **rating** (sentiment): the event's rating as a deviation from the user's
  own mean, in five buckets (nothing when the data has no ratings).
* **recency** (timeliness): the log2-bucketed time since the user's previous
  event (nothing when the data has no timestamps; positions still order the
  short window).

Two encoders read those events:

* **short-term**: causal self-attention (SASRec blocks) over the last
  ``max_len`` events;
* **long-term**: attention over the whole available history (``long_len``
  older events plus the window), queried by the short-term state and the
  time since the last event, so it pulls in the old events that matter for
  what the user is doing now.  With ``long_scope="past"`` it reads only the
  events older than the window: on short histories the long branch then has
  nothing to read, the gate is 1 and the model is its short-term branch,
  which is then exactly SASRec.  A learned vector per training user
  (``user_emb``) is added to the long-term interest; a user the model never
  saw gets zero.

**Fusion**: a gate per user per step, ``g = sigmoid(MLP([s, l, now]))``,
where ``now`` embeds the time since the user's last event at request time
(at training, the gap to the next event).  The user vector is
``g * s + (1 - g) * l``: ``g`` is the short-term share, returned by
:meth:`Fusion.gates` and in every explanation.

**Trend** (``trend_days``): the item side of timeliness, each item's log
count of training events in the days before the request, added to its score
with a weight picked on valid after training (:mod:`.trend`).

**Loss**: full-softmax cross-entropy at every position, like SASRec, plus
each branch's own loss on a share of the positions (``aux_loss``).

Ablations are config switches: ``use_text``, ``use_time``, ``use_rating``,
``user_emb``, ``trend_days=0`` and ``gate`` ("fixed" = 50/50, "short" =
short-term only, "long" = long-term only).

The package, one job per file: :mod:`.config` (settings), :mod:`.features`
(what the model reads of a log), :mod:`.trend`, :mod:`.module` (the network),
:mod:`.model` (fit, score, new items), :mod:`.explain`.
"""

from recfuse.models.fusion.config import GATES, SCOPES, FusionConfig
from recfuse.models.fusion.features import gap_bucket, rating_bucket, running_z, trim_padding
from recfuse.models.fusion.model import Fusion
from recfuse.models.fusion.module import DIMENSIONS, FusionModule, FusionOutput
from recfuse.models.fusion.trend import Trend, unseen_trend

__all__ = [
    "DIMENSIONS", "GATES", "SCOPES", "Fusion", "FusionConfig", "FusionModule", "FusionOutput", "Trend",
    "gap_bucket", "rating_bucket", "running_z", "trim_padding", "unseen_trend",
]
