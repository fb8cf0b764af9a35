//! Row values from heap tuples: a relation's descriptor read from the catalogs ([`desc`]),
//! tuple deforming ([`deform`]), varlena headers, inline compression and TOAST pointers
//! ([`toast`]), and each datum as the text PostgreSQL's output function prints ([`text`]).
//!
//! The WAL gives tuple images ([`crate::wal::tuple`]); this layer turns them into rows. It
//! never guesses: a type it cannot print natively comes back as raw bytes marked undecoded,
//! and a tuple that does not fit its descriptor is an error naming the relation and ctid.

pub mod deform;
pub mod desc;
pub mod text;
pub mod toast;

pub use deform::{decode_row, deform, Column, Datum, TupleError};
pub use desc::{Attr, ElemType, RelDesc, TypeInfo};
pub use text::Value;
pub use toast::{ToastPointer, Varlena};
