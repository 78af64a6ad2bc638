"""The worker side: camera shards in worker processes, the messages they send, clips.

Nothing here imports the web stack or the database layer: a worker decodes, analyses and
reports; the main process stores and serves.
"""
