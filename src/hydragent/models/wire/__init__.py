"""Wire formats: hydragent messages to and from a protocol, apart from any backend."""
