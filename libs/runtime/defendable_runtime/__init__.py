"""The services' I/O edge kit: settings from the environment, the JetStream
broker and stream declarations, ack/dead-letter policy, S3 blobs, migrations.

`libs/canonical` stays pure (no I/O, clock or environment); everything that
touches a network or a disk and is the same in every service lives here, so the
services do not each carry their own copy.
"""
