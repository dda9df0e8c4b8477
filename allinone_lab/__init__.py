"""allinone-lab: a research toolkit for unified video-language pre-training (the All-in-one Transformer).

Where things live: ``allinone_lab.model`` (the Transformer, temporal modules, heads, measurements),
``allinone_lab.data`` (video reading, tokenizer, datasets, the built-in corpus).
"""

__version__ = "0.1.0"
