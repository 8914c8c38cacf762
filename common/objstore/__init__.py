"""Where Flink keeps state and jars: object storage (S3, GCS, Azure) and local disk, through
one interface (`common.objstore.storage`)."""
