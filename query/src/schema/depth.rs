//! Selection depth of a document, not counting introspection (`__schema`, `__type`):
//! GraphiQL's introspection query nests `ofType` deeper than any storefront page, and is
//! cheap, so the depth limit is for data only.

use std::collections::HashMap;

use async_graphql::parser::types::{ExecutableDocument, FragmentDefinition, Selection, SelectionSet};
use async_graphql::{Name, Positioned};

/// The deepest data selection of any operation of `document`, counted up to `cap` (a
/// deeper document answers `cap`: the walk never recurses deeper than that).
pub fn data_depth(document: &ExecutableDocument, cap: usize) -> usize {
    let mut walker = Walker { fragments: &document.fragments, memo: HashMap::new() };
    document.operations.iter().map(|(_, op)| walker.depth(&op.node.selection_set.node, cap)).max().unwrap_or(0)
}

struct Walker<'a> {
    fragments: &'a HashMap<Name, Positioned<FragmentDefinition>>,
    /// Depth of each fragment's selection; `None` while being computed (a cycle, which
    /// validation rejects anyway, counts as 0 here).
    memo: HashMap<&'a str, Option<usize>>,
}

impl<'a> Walker<'a> {
    /// Depth of `set`, at most `room`. A fragment memoised while cut short is too shallow
    /// elsewhere, but then the whole document already reached the cap.
    fn depth(&mut self, set: &'a SelectionSet, room: usize) -> usize {
        if room == 0 {
            return 0;
        }
        set.items
            .iter()
            .map(|item| match &item.node {
                Selection::Field(field) => {
                    let name = field.node.name.node.as_str();
                    if name.starts_with("__") { 0 } else { 1 + self.depth(&field.node.selection_set.node, room - 1) }
                }
                Selection::InlineFragment(fragment) => self.depth(&fragment.node.selection_set.node, room),
                Selection::FragmentSpread(spread) => self.fragment(spread.node.fragment_name.node.as_str(), room),
            })
            .max()
            .unwrap_or(0)
    }

    fn fragment(&mut self, name: &'a str, room: usize) -> usize {
        match self.memo.get(name) {
            Some(Some(depth)) => return *depth,
            Some(None) => return 0,
            None => {}
        }
        let Some(definition) = self.fragments.get(name) else { return 0 };
        self.memo.insert(name, None);
        let depth = self.depth(&definition.node.selection_set.node, room);
        self.memo.insert(name, Some(depth));
        depth
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn depth(query: &str) -> usize {
        data_depth(&async_graphql::parser::parse_query(query).expect("parses"), 64)
    }

    #[test]
    fn counts_data_fields_through_fragments_and_skips_introspection() {
        assert_eq!(depth("{ a }"), 1);
        assert_eq!(depth("{ a { b { c } } d }"), 3);
        assert_eq!(depth("{ a { ...F } } fragment F on T { b { c } }"), 3);
        assert_eq!(depth("{ a { ... on T { b } } }"), 2);
        assert_eq!(depth("{ __schema { types { fields { type { ofType { ofType { name } } } } } } a }"), 1);
        assert_eq!(depth("{ a { __typename } }"), 1);
        assert_eq!(depth("{ ...A } fragment A on Q { ...B } fragment B on Q { ...A }"), 0);
        let deep = format!("{}{}", "{ a ".repeat(20), "}".repeat(20));
        let parsed = async_graphql::parser::parse_query(&deep).expect("parses");
        assert_eq!(data_depth(&parsed, 64), 20);
        assert_eq!(data_depth(&parsed, 5), 5, "the walk stops at the cap");
    }
}
