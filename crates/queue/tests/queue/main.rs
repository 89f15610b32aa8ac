//! The broker queues against real servers: RabbitMQ on the machine, moto for SQS.

mod amqp;
mod chunks;
mod database;
mod sqs;
