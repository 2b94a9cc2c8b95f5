//! Reading `COPY (query) TO STDOUT (FORMAT binary)` into record batches.
//!
//! The format: an 11-byte signature, a flags word and a header extension;
//! then per row a 16-bit field count and per field a 32-bit length (-1 for
//! NULL) and the value's binary form; then a field count of -1. Chunks from
//! the server do not align with rows, so rows are parsed only once all
//! their bytes have arrived.

use std::sync::Arc;

use arrow::array::{RecordBatch, RecordBatchOptions};
use arrow::datatypes::SchemaRef;
use bytes::{Buf, BytesMut};

use super::decode::ColumnDecoder;
use crate::error::{ConnectorError, Result};

const SIGNATURE: &[u8] = b"PGCOPY\n\xff\r\n\0";

/// Turns the bytes of a binary COPY into record batches of `batch_size` rows.
pub(crate) struct CopyDecoder {
    buffer: BytesMut,
    header_read: bool,
    finished: bool,
    columns: Vec<ColumnDecoder>,
    schema: SchemaRef,
    batch_size: usize,
    rows_in_batch: usize,
    rows: u64,
    target: String,
}

impl CopyDecoder {
    pub(crate) fn new(
        columns: Vec<ColumnDecoder>,
        schema: SchemaRef,
        batch_size: usize,
        target: String,
    ) -> Self {
        Self {
            buffer: BytesMut::new(),
            header_read: false,
            finished: false,
            columns,
            schema,
            batch_size,
            rows_in_batch: 0,
            rows: 0,
            target,
        }
    }

    /// Adds bytes received from the server.
    pub(crate) fn push(&mut self, chunk: &[u8]) {
        self.buffer.extend_from_slice(chunk);
    }

    /// Decodes the complete rows buffered so far; returns a batch once
    /// `batch_size` rows are ready.
    pub(crate) fn next_batch(&mut self) -> Result<Option<RecordBatch>> {
        if !self.header_read && !self.read_header()? {
            return Ok(None);
        }
        while !self.finished {
            let Some(len) = self.complete_row_len()? else {
                break;
            };
            self.decode_row(len)?;
            if self.rows_in_batch == self.batch_size {
                return self.flush().map(Some);
            }
        }
        Ok(None)
    }

    /// The rows left when the server has sent everything.
    pub(crate) fn finish(&mut self) -> Result<Option<RecordBatch>> {
        if !self.finished {
            return Err(self.malformed("the COPY data ended before its trailer"));
        }
        if self.rows_in_batch == 0 {
            return Ok(None);
        }
        self.flush().map(Some)
    }

    fn malformed(&self, what: &str) -> ConnectorError {
        ConnectorError::Unsupported {
            target: self.target.clone(),
            message: format!("unexpected binary COPY data: {what}"),
        }
    }

    fn read_header(&mut self) -> Result<bool> {
        if self.buffer.len() < SIGNATURE.len() + 8 {
            return Ok(false);
        }
        if &self.buffer[..SIGNATURE.len()] != SIGNATURE {
            return Err(self.malformed("bad signature"));
        }
        let ext = u32::from_be_bytes([
            self.buffer[15],
            self.buffer[16],
            self.buffer[17],
            self.buffer[18],
        ]) as usize;
        if self.buffer.len() < SIGNATURE.len() + 8 + ext {
            return Ok(false);
        }
        self.buffer.advance(SIGNATURE.len() + 8 + ext);
        self.header_read = true;
        Ok(true)
    }

    /// The byte length of the next row if all of it is buffered.
    fn complete_row_len(&mut self) -> Result<Option<usize>> {
        let b = &self.buffer[..];
        if b.len() < 2 {
            return Ok(None);
        }
        let fields = i16::from_be_bytes([b[0], b[1]]);
        if fields == -1 {
            self.buffer.advance(2);
            self.finished = true;
            return Ok(None);
        }
        if usize::try_from(fields).ok() != Some(self.columns.len()) {
            return Err(self.malformed(&format!(
                "a row of {fields} fields, expected {}",
                self.columns.len()
            )));
        }
        let mut pos = 2;
        for _ in 0..self.columns.len() {
            let Some(len) = b.get(pos..pos + 4) else {
                return Ok(None);
            };
            let len = i32::from_be_bytes([len[0], len[1], len[2], len[3]]);
            pos += 4;
            if len > 0 {
                pos += len as usize;
            }
        }
        Ok((b.len() >= pos).then_some(pos))
    }

    fn decode_row(&mut self, len: usize) -> Result<()> {
        let row = self.buffer.split_to(len);
        self.rows += 1;
        let mut pos = 2;
        for column in &mut self.columns {
            let field_len =
                i32::from_be_bytes([row[pos], row[pos + 1], row[pos + 2], row[pos + 3]]);
            pos += 4;
            if field_len < 0 {
                column.append(None, self.rows)?;
            } else {
                let end = pos + field_len as usize;
                column.append(Some(&row[pos..end]), self.rows)?;
                pos = end;
            }
        }
        self.rows_in_batch += 1;
        Ok(())
    }

    fn flush(&mut self) -> Result<RecordBatch> {
        let arrays = self
            .columns
            .iter_mut()
            .map(ColumnDecoder::finish)
            .collect::<Result<Vec<_>>>()?;
        let options = RecordBatchOptions::new().with_row_count(Some(self.rows_in_batch));
        self.rows_in_batch = 0;
        Ok(RecordBatch::try_new_with_options(
            Arc::clone(&self.schema),
            arrays,
            &options,
        )?)
    }
}
