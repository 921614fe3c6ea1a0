//! The functions of a recording, each described once and referred to by a small id.

use std::collections::HashMap;

/// A function of a [`FunctionTable`]: its index there.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FunctionId(pub u32);

impl FunctionId {
    /// What [`FunctionTable::intern`] returns once the table holds `u32::MAX` functions: it
    /// resolves to no function, and the writers show it as `<unknown>`.
    pub const OVERFLOW: FunctionId = FunctionId(u32::MAX);
}

/// What the writers show of a function: its code object's `co_name`, `co_qualname`,
/// `co_filename` and `co_firstlineno`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct FunctionInfo {
    pub name: Box<str>,
    pub qualname: Box<str>,
    pub filename: Box<str>,
    pub first_line: u32,
}

impl FunctionInfo {
    pub fn new(
        name: impl Into<Box<str>>,
        qualname: impl Into<Box<str>>,
        filename: impl Into<Box<str>>,
        first_line: u32,
    ) -> Self {
        FunctionInfo {
            name: name.into(),
            qualname: qualname.into(),
            filename: filename.into(),
            first_line,
        }
    }

    /// The name a slice is labelled with: the qualified name, or the plain name if the
    /// interpreter gave none.
    pub fn display_name(&self) -> &str {
        if self.qualname.is_empty() {
            &self.name
        } else {
            &self.qualname
        }
    }
}

/// Interns [`FunctionInfo`]s: equal descriptions get the same [`FunctionId`], ids are given in
/// order from 0. The binding layer interns once per code object and keeps the id.
#[derive(Debug, Default)]
pub struct FunctionTable {
    functions: Vec<FunctionInfo>,
    ids: HashMap<FunctionInfo, FunctionId>,
}

impl FunctionTable {
    pub fn new() -> Self {
        FunctionTable::default()
    }

    pub fn intern(&mut self, info: FunctionInfo) -> FunctionId {
        if let Some(&id) = self.ids.get(&info) {
            return id;
        }
        let Ok(index) = u32::try_from(self.functions.len()) else {
            return FunctionId::OVERFLOW;
        };
        let id = FunctionId(index);
        if id == FunctionId::OVERFLOW {
            return id;
        }
        self.ids.insert(info.clone(), id);
        self.functions.push(info);
        id
    }

    /// The function with this id; None for an id this table did not give.
    pub fn get(&self, id: FunctionId) -> Option<&FunctionInfo> {
        self.functions.get(id.0 as usize)
    }

    pub fn len(&self) -> usize {
        self.functions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.functions.is_empty()
    }

    /// Every function, in id order.
    pub fn iter(&self) -> impl Iterator<Item = (FunctionId, &FunctionInfo)> {
        self.functions
            .iter()
            .enumerate()
            .map(|(i, info)| (FunctionId(i as u32), info))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_descriptions_share_an_id() {
        let mut table = FunctionTable::new();
        assert!(table.is_empty());
        let a = table.intern(FunctionInfo::new("total", "Cart.total", "shop.py", 10));
        let b = table.intern(FunctionInfo::new("main", "main", "shop.py", 20));
        let again = table.intern(FunctionInfo::new("total", "Cart.total", "shop.py", 10));
        let other_file = table.intern(FunctionInfo::new("total", "Cart.total", "old.py", 10));
        assert_eq!(
            (a, b, again, other_file),
            (FunctionId(0), FunctionId(1), a, FunctionId(2))
        );
        assert_eq!(table.len(), 3);
        assert_eq!(table.get(b).map(|f| &*f.name), Some("main"));
        assert_eq!(table.get(FunctionId(3)), None);
        assert_eq!(table.get(FunctionId::OVERFLOW), None);
        let ids: Vec<FunctionId> = table.iter().map(|(id, _)| id).collect();
        assert_eq!(ids, [a, b, other_file]);
    }

    #[test]
    fn the_display_name_falls_back_to_the_plain_name() {
        assert_eq!(
            FunctionInfo::new("f", "C.f", "x.py", 1).display_name(),
            "C.f"
        );
        assert_eq!(FunctionInfo::new("f", "", "x.py", 1).display_name(), "f");
    }
}
