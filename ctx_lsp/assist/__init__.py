"""The assistant's jobs: the request pipeline, completion requests, explain, fix, tests, commit
messages, chat, answers cleaned.

May import: every layer below the runtime.
"""
