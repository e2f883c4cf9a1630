# The cluster profile's settings: source this on every host (submitting host, CPU workers,
# GPU workers), with your own addresses and credentials.
export DAGSTER_HOME=${DAGSTER_HOME:-$HOME/.dagster-cluster}   # holds a copy of dagster.yaml
export DAGSTER_PG_URL=postgresql://dagster:dagster@db-host:5432/dagster
export DAGSTER_S3_LOG_BUCKET=code-index
export CODE_INDEX_EXECUTOR=celery
export CODE_INDEX_CELERY_BROKER=redis://broker-host:6379/0
export CODE_INDEX_STEP_OUTPUTS=s3://code-index/step-outputs
export CODE_INDEX_DB=s3://code-index/lancedb
export CODE_INDEX_EMBED_CONSUMERS=2                            # GPUs, over all GPU workers
export CODE_INDEX_CHUNK_STEPS=8                                # CPU workers' processes in all
export AWS_ACCESS_KEY_ID=... AWS_SECRET_ACCESS_KEY=... AWS_REGION=us-east-1
# An S3-compatible endpoint instead of AWS (boto reads AWS_ENDPOINT_URL; LanceDB its options):
# export AWS_ENDPOINT_URL=http://s3-host:9000
# export CODE_INDEX_STORAGE_OPTIONS="aws_endpoint=http://s3-host:9000;allow_http=true"
