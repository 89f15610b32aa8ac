//! RabbitMQ tests (in progress).
