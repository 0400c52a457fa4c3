"""Language models that write: explanations and interest summaries phrased from the model's own facts.

* :mod:`recfuse.llm.generators`: the :class:`TextGenerator` interface and its back ends (a small instruct
  LLM shipped in a PyPI package and run offline; any OpenAI-compatible endpoint by URL);
* :mod:`recfuse.llm.phrase`: the deterministic templates, the prompts and the title guard;
* :mod:`recfuse.llm.facts`: facts read from a model directory;
* :mod:`recfuse.llm.descriptions`: short descriptions written for catalogue items that have none (cached,
  title-guarded, marked as generated; ``recfuse text describe``).

Importing this package is light: torch, transformers and httpx load only when a back end is used.

Examples
--------
>>> explain_item(ItemFacts("Up (2009)", gate=0.9, because=("Cars (2006)",), dimension="content")).source
'template'
"""

from recfuse.llm.generators import (
    GENERATORS,
    GenerationError,
    LocalGenerator,
    OpenAIGenerator,
    TextGenerator,
    generator_from_env,
    make_generator,
)
from recfuse.llm.phrase import (
    ItemFacts,
    Phrase,
    ProfileFacts,
    TitleGuard,
    check_text,
    explain_item,
    explain_items,
    item_template,
    profile_template,
    summarise_profile,
)

__all__ = [
    "GENERATORS",
    "GenerationError",
    "ItemFacts",
    "LocalGenerator",
    "OpenAIGenerator",
    "Phrase",
    "ProfileFacts",
    "TextGenerator",
    "TitleGuard",
    "check_text",
    "explain_item",
    "explain_items",
    "generator_from_env",
    "item_template",
    "make_generator",
    "profile_template",
    "summarise_profile",
]
