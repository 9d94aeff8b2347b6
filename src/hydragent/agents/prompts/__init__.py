"""Default prompts of the agents; config replaces them with a path or inline text."""
