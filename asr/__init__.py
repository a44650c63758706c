"""asr: Kaldi-style hybrid speech recognition in Python."""

__version__ = "0.1.0"
