"""Item text: build it, import descriptions, encode it with a registered sentence encoder, cache the vectors,
sentiment.

Importing this package is light: torch and sentence-transformers load only
when a model is first used.

Examples
--------
>>> from recfuse.text import item_texts, encode_items, TextEncoder   # doctest: +SKIP
>>> vectors, stats = encode_items(load_dataset("ml-100k"))           # doctest: +SKIP
"""

from recfuse.text.build import DEFAULT_SEGMENTS, ItemTexts, TextError, build_item_texts, build_texts, item_texts
from recfuse.text.cache import EmbeddingCache, EncodeStats, embeddings_root, encode_items, encode_texts, text_hash
from recfuse.text.encoder import DEFAULT_MODEL, ENCODERS, EncoderInfo, TextEncoder, Throughput, default_model
from recfuse.text.sentiment import normalised_ratings, text_polarity

__all__ = [
    "DEFAULT_MODEL",
    "DEFAULT_SEGMENTS",
    "ENCODERS",
    "EmbeddingCache",
    "EncodeStats",
    "EncoderInfo",
    "ItemTexts",
    "TextEncoder",
    "TextError",
    "Throughput",
    "build_item_texts",
    "build_texts",
    "default_model",
    "embeddings_root",
    "encode_items",
    "encode_texts",
    "item_texts",
    "normalised_ratings",
    "text_hash",
    "text_polarity",
]
