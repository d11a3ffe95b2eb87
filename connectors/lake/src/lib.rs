//! outflow-lake: the raw-zone data-lake sink, outflow's embedded default.
//!
//! It will own the file layout (`<root>/<topic>/date=…/hour=…/<connector>+<first>+<last>.<ext>`),
//! the formats (Avro object container files, JSON lines, Parquet), the roll policy (size,
//! count, time, schema change), and the exactly-once file protocol: write under a
//! temporary name, fsync, rename, then report Durable; on start remove leftovers past the
//! committed offset. It implements [`outflow_core::Sink`].
