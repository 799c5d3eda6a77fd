//! The dead-letter topic: events a worker cannot apply, with the reason and where they were.
//!
//! A dead letter is written (and acknowledged) before the batch that skips the event stores its
//! offset, so no poison message is lost. A crash between the two can write it twice; the record
//! names its source partition and offset, which identify it.

use aperture_schema::config::KafkaConfig;
use rdkafka::config::ClientConfig;
use rdkafka::error::KafkaError;
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde::Serialize;

/// One event that could not be applied.
#[derive(Debug, Clone, Serialize)]
pub struct DeadLetter {
    /// Topic, partition and offset of the original record.
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    /// Why it cannot be applied, as a sentence.
    pub reason: String,
    /// The validation rule it broke, when it decoded far enough to tell.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// The original payload (invalid UTF-8 replaced).
    pub payload: String,
    #[serde(skip)]
    pub key: Option<Vec<u8>>,
}

/// Writes dead letters and waits for the broker to acknowledge them.
pub struct DeadLetters {
    producer: FutureProducer,
    topic: String,
}

impl std::fmt::Debug for DeadLetters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeadLetters")
            .field("topic", &self.topic)
            .finish()
    }
}

impl DeadLetters {
    pub fn new(kafka: &KafkaConfig) -> Result<Self, KafkaError> {
        let producer = ClientConfig::new()
            .set("bootstrap.servers", &kafka.brokers)
            .set("client.id", format!("{}-dead-letters", kafka.client_id))
            .set("broker.address.family", "v4")
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .create()?;
        Ok(DeadLetters {
            producer,
            topic: kafka.dead_letter_topic.clone(),
        })
    }

    /// Sends every letter and blocks until all are acknowledged.
    pub fn send(&self, letters: &[DeadLetter]) -> Result<(), KafkaError> {
        let payloads: Vec<Vec<u8>> = letters
            .iter()
            .map(|l| serde_json::to_vec(l).expect("a dead letter always serialises"))
            .collect();
        let mut deliveries = Vec::with_capacity(letters.len());
        for (letter, payload) in letters.iter().zip(&payloads) {
            let mut record = FutureRecord::<[u8], [u8]>::to(&self.topic).payload(payload);
            if let Some(key) = &letter.key {
                record = record.key(key);
            }
            // Dead letters are rare and few per batch; a full local queue is an error to retry.
            deliveries.push(
                self.producer
                    .send_result(record)
                    .map_err(|(error, _)| error)?,
            );
        }
        for delivery in futures::executor::block_on(futures::future::join_all(deliveries)) {
            match delivery {
                Ok(Ok(_)) => {}
                Ok(Err((error, _))) => return Err(error),
                Err(_canceled) => return Err(KafkaError::Canceled),
            }
        }
        Ok(())
    }
}
