"""Reliability and security: nothing leaked, nothing lost, the server never dies."""
