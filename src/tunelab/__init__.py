"""tunelab: local fine-tuning with OpenAI's fine-tuning workflow and API."""

__version__ = "0.1.0"
