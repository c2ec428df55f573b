//! The `device_pools` table: each pool's CUCM group history.

use std::sync::Arc;

use arrow::array::{ListBuilder, RecordBatch, StringBuilder, TimestampMicrosecondBuilder};
use arrow::datatypes::{DataType, Field, Schema};

use super::ts;
use crate::model::rows::PoolConfig;

/// Pool configurations as a batch (consecutive repeats of a group once).
pub fn batch(pool_configs: &[PoolConfig]) -> RecordBatch {
    let mut pool = StringBuilder::new();
    let mut home = StringBuilder::new();
    let mut nodes = ListBuilder::new(StringBuilder::new());
    let mut from = TimestampMicrosecondBuilder::new().with_timezone("UTC");
    let mut configs: Vec<_> = pool_configs.iter().collect();
    configs.sort_by(|a, b| {
        (&a.device_pool, a.time, a.ingest_seq).cmp(&(&b.device_pool, b.time, b.ingest_seq))
    });
    configs.dedup_by(|b, a| a.device_pool == b.device_pool && a.nodes == b.nodes);
    for c in configs {
        pool.append_value(&c.device_pool);
        home.append_option(c.nodes.first().map(|n| &**n));
        for n in &c.nodes {
            nodes.values().append_value(n);
        }
        nodes.append(true);
        from.append_value(c.time);
    }
    let schema = Arc::new(Schema::new(vec![
        Field::new("device_pool", DataType::Utf8, false),
        Field::new("home_node", DataType::Utf8, true),
        Field::new(
            "nodes",
            DataType::List(Arc::new(Field::new("item", DataType::Utf8, true))),
            false,
        ),
        Field::new("valid_from", ts(), false),
    ]));
    RecordBatch::try_new(
        schema,
        vec![
            Arc::new(pool.finish()),
            Arc::new(home.finish()),
            Arc::new(nodes.finish()),
            Arc::new(from.finish()),
        ],
    )
    .expect("columns match the schema")
}
