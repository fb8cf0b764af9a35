//! The conversion of analysis types into wire types, and its plain cases (values that are
//! their own wire form, options, lists, maps).

use std::collections::BTreeMap;

use crate::finding::{Finding, FindingId, Severity};
use crate::lsn::{Lsn, SystemId, TimelineId, Xid};

/// Field-for-field conversion of an analysis type into its wire type.
pub trait Wire {
    /// The wire type.
    type Out;
    /// Converts.
    fn wire(&self) -> Self::Out;
}

macro_rules! wire_as_clone {
    ($($t:ty),*) => { $( impl Wire for $t { type Out = $t; fn wire(&self) -> $t { self.clone() } } )* };
}
wire_as_clone!(
    String, bool, u8, u16, u32, u64, usize, i32, i64, f64, Lsn, TimelineId, Xid, SystemId,
    Severity, FindingId, Finding, serde_json::Value,
    serde_json::Map<String, serde_json::Value>
);

impl<T: Wire> Wire for Option<T> {
    type Out = Option<T::Out>;
    fn wire(&self) -> Self::Out {
        self.as_ref().map(Wire::wire)
    }
}

impl<T: Wire> Wire for Vec<T> {
    type Out = Vec<T::Out>;
    fn wire(&self) -> Self::Out {
        self.iter().map(Wire::wire).collect()
    }
}

impl<T: Wire> Wire for BTreeMap<String, T> {
    type Out = BTreeMap<String, T::Out>;
    fn wire(&self) -> Self::Out {
        self.iter().map(|(k, v)| (k.clone(), v.wire())).collect()
    }
}
