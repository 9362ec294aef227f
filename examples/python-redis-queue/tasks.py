"""What the workers run. A job's result says which instance ran it."""
import os


def count_words(text):
    return {"words": len(text.split()), "worker": os.environ.get("MIREN_SANDBOX", "?")}
