//! Parquet outputs (Apache Arrow's `parquet` crate), written as results stream: rows are
//! gathered into small Arrow batches, and a row group is closed every ~8 MiB, so memory holds
//! at most one row group whatever the number of images. Snappy-compressed, as Spark and
//! DuckDB write by default.
//!
//! - embed: `path` (string), `features` (fixed-size list of float32, D).
//! - classify: `path`, `predictions`: a list of {index int32, label string, probability
//!   float32, logit float32} in rank order.

use std::io::{self, Write};
use std::sync::Arc;

use arrow_array::{
    ArrayRef, FixedSizeListArray, Float32Array, Int32Array, ListArray, RecordBatch, StringArray,
    StructArray,
};
use arrow_schema::{DataType, Field, Fields, Schema, SchemaRef};
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;

use super::Prediction;

/// Rows handed to the Parquet writer at a time.
const BATCH_ROWS: usize = 256;
/// A row group is closed once its encoded size passes this.
const ROW_GROUP_BYTES: usize = 8 << 20;

fn writer<W: Write + Send>(out: W, schema: SchemaRef) -> io::Result<ArrowWriter<W>> {
    let props = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .set_max_row_group_bytes(Some(ROW_GROUP_BYTES))
        // Min/max of float vectors and logits filter nothing; the paths' do (row-group level).
        .set_statistics_enabled(EnabledStatistics::None)
        .set_column_statistics_enabled(ColumnPath::from("path"), EnabledStatistics::Chunk)
        .build();
    ArrowWriter::try_new(out, schema, Some(props)).map_err(io::Error::other)
}

fn finish<W: Write + Send>(mut w: ArrowWriter<W>) -> io::Result<W> {
    w.flush().map_err(io::Error::other)?;
    w.into_inner().map_err(io::Error::other)
}

/// embed's rows.
pub struct ParquetEmbed<W: Write + Send> {
    writer: ArrowWriter<W>,
    schema: SchemaRef,
    item: Arc<Field>,
    dim: usize,
    paths: Vec<String>,
    features: Vec<f32>,
}

impl<W: Write + Send> ParquetEmbed<W> {
    pub fn new(out: W, dim: usize) -> io::Result<Self> {
        let item = Arc::new(Field::new("item", DataType::Float32, false));
        let dim_i32 = i32::try_from(dim).map_err(io::Error::other)?;
        let schema = Arc::new(Schema::new(vec![
            Field::new("path", DataType::Utf8, false),
            Field::new(
                "features",
                DataType::FixedSizeList(item.clone(), dim_i32),
                false,
            ),
        ]));
        Ok(Self {
            writer: writer(out, schema.clone())?,
            schema,
            item,
            dim,
            paths: Vec::with_capacity(BATCH_ROWS),
            features: Vec::with_capacity(BATCH_ROWS * dim),
        })
    }

    pub fn write(&mut self, path: &str, features: &[f32]) -> io::Result<()> {
        debug_assert_eq!(features.len(), self.dim);
        self.paths.push(path.to_string());
        self.features.extend_from_slice(features);
        if self.paths.len() == BATCH_ROWS {
            self.write_batch()?;
        }
        Ok(())
    }

    fn write_batch(&mut self) -> io::Result<()> {
        if self.paths.is_empty() {
            return Ok(());
        }
        let paths: ArrayRef = Arc::new(StringArray::from(std::mem::take(&mut self.paths)));
        let values = Float32Array::from(std::mem::take(&mut self.features));
        let features: ArrayRef = Arc::new(
            FixedSizeListArray::try_new(self.item.clone(), self.dim as i32, Arc::new(values), None)
                .map_err(io::Error::other)?,
        );
        let batch = RecordBatch::try_new(self.schema.clone(), vec![paths, features])
            .map_err(io::Error::other)?;
        self.writer.write(&batch).map_err(io::Error::other)
    }

    /// Writes the last rows and the footer; returns the output, not yet committed.
    pub fn finish(mut self) -> io::Result<W> {
        self.write_batch()?;
        finish(self.writer)
    }
}

/// classify's rows.
pub struct ParquetClassify<W: Write + Send> {
    writer: ArrowWriter<W>,
    schema: SchemaRef,
    prediction: Fields,
    item: Arc<Field>,
    paths: Vec<String>,
    /// Predictions per row.
    counts: Vec<i32>,
    index: Vec<i32>,
    label: Vec<String>,
    probability: Vec<f32>,
    logit: Vec<f32>,
}

impl<W: Write + Send> ParquetClassify<W> {
    pub fn new(out: W) -> io::Result<Self> {
        let prediction = Fields::from(vec![
            Field::new("index", DataType::Int32, false),
            Field::new("label", DataType::Utf8, false),
            Field::new("probability", DataType::Float32, false),
            Field::new("logit", DataType::Float32, false),
        ]);
        let item = Arc::new(Field::new(
            "item",
            DataType::Struct(prediction.clone()),
            false,
        ));
        let schema = Arc::new(Schema::new(vec![
            Field::new("path", DataType::Utf8, false),
            Field::new("predictions", DataType::List(item.clone()), false),
        ]));
        Ok(Self {
            writer: writer(out, schema.clone())?,
            schema,
            prediction,
            item,
            paths: Vec::new(),
            counts: Vec::new(),
            index: Vec::new(),
            label: Vec::new(),
            probability: Vec::new(),
            logit: Vec::new(),
        })
    }

    pub fn write(&mut self, path: &str, predictions: &[Prediction]) -> io::Result<()> {
        self.paths.push(path.to_string());
        self.counts.push(predictions.len() as i32);
        for p in predictions {
            self.index.push(p.index as i32);
            self.label.push(p.label.to_string());
            self.probability.push(p.probability);
            self.logit.push(p.logit);
        }
        if self.paths.len() == BATCH_ROWS {
            self.write_batch()?;
        }
        Ok(())
    }

    fn write_batch(&mut self) -> io::Result<()> {
        if self.paths.is_empty() {
            return Ok(());
        }
        let columns: Vec<ArrayRef> = vec![
            Arc::new(Int32Array::from(std::mem::take(&mut self.index))),
            Arc::new(StringArray::from(std::mem::take(&mut self.label))),
            Arc::new(Float32Array::from(std::mem::take(&mut self.probability))),
            Arc::new(Float32Array::from(std::mem::take(&mut self.logit))),
        ];
        let structs = StructArray::try_new(self.prediction.clone(), columns, None)
            .map_err(io::Error::other)?;
        let offsets = arrow_buffer::OffsetBuffer::from_lengths(
            std::mem::take(&mut self.counts)
                .into_iter()
                .map(|c| c as usize),
        );
        let predictions = ListArray::try_new(self.item.clone(), offsets, Arc::new(structs), None)
            .map_err(io::Error::other)?;
        let paths: ArrayRef = Arc::new(StringArray::from(std::mem::take(&mut self.paths)));
        let batch = RecordBatch::try_new(self.schema.clone(), vec![paths, Arc::new(predictions)])
            .map_err(io::Error::other)?;
        self.writer.write(&batch).map_err(io::Error::other)
    }

    /// Writes the last rows and the footer; returns the output, not yet committed.
    pub fn finish(mut self) -> io::Result<W> {
        self.write_batch()?;
        finish(self.writer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::cast::AsArray;
    use arrow_array::types::{Float32Type, Int32Type};
    use arrow_array::Array;
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

    fn read(bytes: Vec<u8>) -> (Vec<RecordBatch>, usize) {
        let builder = ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::from(bytes)).unwrap();
        let groups = builder.metadata().num_row_groups();
        (
            builder.build().unwrap().map(Result::unwrap).collect(),
            groups,
        )
    }

    #[test]
    fn embed_rows_read_back_in_order_over_several_row_groups() {
        let dim = 1024;
        let mut w = ParquetEmbed::new(Vec::new(), dim).unwrap();
        let n = 5000; // 20 MB of features: three row groups
        for i in 0..n {
            let row: Vec<f32> = (0..dim).map(|j| (i * dim + j) as f32 * 0.5).collect();
            w.write(&format!("s.tar/{i:05}.jpg"), &row).unwrap();
        }
        let (batches, groups) = read(w.finish().unwrap());
        assert!(groups >= 2, "{groups} row group(s)");
        let mut i = 0;
        for b in &batches {
            let paths = b.column(0).as_string::<i32>();
            let features = b.column(1).as_fixed_size_list();
            for r in 0..b.num_rows() {
                assert_eq!(paths.value(r), format!("s.tar/{i:05}.jpg"));
                let row = features.value(r);
                let row = row.as_primitive::<Float32Type>();
                assert_eq!(row.len(), dim);
                assert_eq!(row.value(3), (i * dim + 3) as f32 * 0.5);
                i += 1;
            }
        }
        assert_eq!(i, n);
    }

    #[test]
    fn classify_rows_keep_their_predictions_in_rank_order() {
        let mut w = ParquetClassify::new(Vec::new()).unwrap();
        let p = |index, label, probability| Prediction {
            index,
            label,
            probability,
            logit: probability * 10.0,
        };
        w.write("a.jpg", &[p(3, "cat", 0.75), p(1, "dog", 0.25)])
            .unwrap();
        w.write("b.jpg", &[p(7, "fox", 1.0)]).unwrap();
        let (batches, _) = read(w.finish().unwrap());
        let b = &batches[0];
        assert_eq!(b.num_rows(), 2);
        let lists = b.column(1).as_list::<i32>();
        let first = lists.value(0);
        let first = first.as_struct();
        assert_eq!(first.len(), 2);
        let index = first.column(0).as_primitive::<Int32Type>();
        assert_eq!((index.value(0), index.value(1)), (3, 1));
        assert_eq!(first.column(1).as_string::<i32>().value(1), "dog");
        let logit = first.column(3).as_primitive::<Float32Type>();
        assert_eq!(logit.value(0), 7.5);
        assert_eq!(lists.value(1).len(), 1);
    }
}
