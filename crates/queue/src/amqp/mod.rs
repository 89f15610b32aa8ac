//! RabbitMQ job queue (in progress).
