"""The bucket and queues of `make cluster` (scripts/cluster.sh), with boto3 from .services/venv
(moto depends on it, so scripts/test-services.sh has installed it).

    cluster_aws.py setup ENDPOINT ACCESS_KEY SECRET_KEY NAME [--sqs]
        Creates bucket NAME (emptied if it exists). With --sqs (moto): the queues NAME-jobs and
        NAME-uploads, each redriving to its -dlq after 5 receives (made anew if they exist), and
        the bucket's s3:ObjectCreated:* notification to NAME-uploads. Prints KEY=VALUE lines:
        JOBS_URL, JOBS_DLQ_URL, UPLOADS_URL, UPLOADS_DLQ_URL.
    cluster_aws.py teardown ENDPOINT ACCESS_KEY SECRET_KEY NAME [--sqs]
        Deletes what setup made. Missing things are fine.
    cluster_aws.py count ENDPOINT ACCESS_KEY SECRET_KEY QUEUE_URL
        Prints the messages on a queue, visible, in flight or delayed.
    cluster_aws.py presign ENDPOINT ACCESS_KEY SECRET_KEY NAME KEY
        Prints a presigned PUT URL (SigV4, 1 hour) for object KEY of bucket NAME: `curl -T FILE`
        puts a file there as any client would, and the bucket's events follow.
    cluster_aws.py ls ENDPOINT ACCESS_KEY SECRET_KEY NAME PREFIX
        Prints the keys of bucket NAME under PREFIX, one a line with its size in bytes.
"""

import json
import sys

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

REGION = "us-east-1"


def clients(endpoint, access_key, secret_key):
    common = dict(
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id=access_key,
        aws_secret_access_key=secret_key,
    )
    s3 = boto3.client(
        "s3",
        config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
        **common,
    )
    return s3, boto3.client("sqs", **common)


def empty_bucket(s3, bucket):
    """Every object and unfinished multipart upload of the bucket removed; False if none."""
    try:
        s3.head_bucket(Bucket=bucket)
    except ClientError:
        return False
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
        if keys:
            s3.delete_objects(Bucket=bucket, Delete={"Objects": keys, "Quiet": True})
    for upload in s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []):
        s3.abort_multipart_upload(Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"])
    return True


def queue_url(sqs, name):
    try:
        return sqs.get_queue_url(QueueName=name)["QueueUrl"]
    except ClientError:
        return None


def delete_queue(sqs, name):
    url = queue_url(sqs, name)
    if url:
        sqs.delete_queue(QueueUrl=url)


def arn(sqs, url):
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
    return attributes["Attributes"]["QueueArn"]


def queue_pair(sqs, name):
    """NAME redriving to NAME-dlq after 5 receives, both new: (url, dead-letter url)."""
    delete_queue(sqs, name)
    delete_queue(sqs, f"{name}-dlq")
    dead = sqs.create_queue(QueueName=f"{name}-dlq")["QueueUrl"]
    policy = {"deadLetterTargetArn": arn(sqs, dead), "maxReceiveCount": "5"}
    main = sqs.create_queue(
        QueueName=name, Attributes={"RedrivePolicy": json.dumps(policy)}
    )["QueueUrl"]
    return main, dead


def setup(s3, sqs, name, with_sqs):
    if not empty_bucket(s3, name):
        s3.create_bucket(Bucket=name)
    if not with_sqs:
        return
    jobs, jobs_dead = queue_pair(sqs, f"{name}-jobs")
    uploads, uploads_dead = queue_pair(sqs, f"{name}-uploads")
    s3.put_bucket_notification_configuration(
        Bucket=name,
        NotificationConfiguration={
            "QueueConfigurations": [
                {
                    "Id": "vidsnap-uploads",
                    "QueueArn": arn(sqs, uploads),
                    "Events": ["s3:ObjectCreated:*"],
                }
            ]
        },
    )
    print(f"JOBS_URL={jobs}")
    print(f"JOBS_DLQ_URL={jobs_dead}")
    print(f"UPLOADS_URL={uploads}")
    print(f"UPLOADS_DLQ_URL={uploads_dead}")


def teardown(s3, sqs, name, with_sqs):
    if empty_bucket(s3, name):
        s3.delete_bucket(Bucket=name)
    if with_sqs:
        for queue in ["jobs", "uploads"]:
            delete_queue(sqs, f"{name}-{queue}")
            delete_queue(sqs, f"{name}-{queue}-dlq")


def count(sqs, url):
    names = [
        "ApproximateNumberOfMessages",
        "ApproximateNumberOfMessagesNotVisible",
        "ApproximateNumberOfMessagesDelayed",
    ]
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=names)["Attributes"]
    print(sum(int(attributes.get(n, "0")) for n in names))


def presign(s3, bucket, key):
    print(
        s3.generate_presigned_url(
            "put_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=3600
        )
    )


def ls(s3, bucket, prefix):
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            print(f"{item['Key']}  {item['Size']}")


def main(argv):
    with_key = ("presign", "ls")
    if len(argv) < 6 or argv[1] not in ("setup", "teardown", "count", *with_key):
        sys.exit(__doc__)
    if argv[1] in with_key and len(argv) != 7:
        sys.exit(__doc__)
    command, endpoint, access_key, secret_key, name = argv[1:6]
    s3, sqs = clients(endpoint, access_key, secret_key)
    if command == "count":
        count(sqs, name)
        return
    if command in with_key:
        (presign if command == "presign" else ls)(s3, name, argv[6])
        return
    with_sqs = "--sqs" in argv[6:]
    (setup if command == "setup" else teardown)(s3, sqs, name, with_sqs)


if __name__ == "__main__":
    main(sys.argv)
