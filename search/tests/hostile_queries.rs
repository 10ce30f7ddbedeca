//! Whatever people type is words: no input errors or panics.

mod common;

use common::*;
use search::{ProductQuery, SortOrder};

fn hostile() -> Vec<String> {
    let mut table: Vec<String> = [
        "",
        " ",
        "\t\n\r",
        "\"",
        "\"\"\"",
        "\"wireless keyboard",
        "title:keyboard",
        "price:[0 TO 100]",
        "keyboard AND NOT lamp",
        "+keyboard -lamp",
        "(((",
        ")))",
        "[}",
        "{*}",
        "*",
        "?",
        "~",
        "keyboard~2",
        "keyb*",
        "^3",
        "\\",
        "\\\\\"",
        "' OR 1=1 --",
        "'; drop table product; --",
        "<script>alert(1)</script>",
        "%00",
        "\u{0}",
        "\u{feff}keyboard",
        "\u{202e}draobyek",
        "キーボード",
        "клавиатура",
        "لوحة المفاتيح",
        "😀🎹⌨️",
        "e\u{301}",
        "İstanbul ǅ ß ﬁ",
        "NaN",
        "-1",
        "9999999999999999999999999999999",
        "0x1F",
        "::::",
        "a:b:c",
        "/regex.*/",
        "keyboard\0lamp",
        "ⓚⓔⓨⓑⓞⓐⓡⓓ",
        "ｋｅｙｂｏａｒｄ",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect();
    table.push("keyboard ".repeat(1_200)); // ~10 KB of one word
    table.push((0..2_000).map(|i| format!("w{i} ")).collect()); // ~10 KB of distinct words
    table.push("x".repeat(10_240)); // one 10 KB word
    table.push("é".repeat(5_000)); // multi-byte
    table.push("\"(".repeat(5_000));
    table.push(format!("{}wirel", "ab ".repeat(3_000)));
    table
}

#[test]
fn hostile_query_strings_never_error_or_panic() {
    let index = index_of(&listing_events(&fixed_catalogue()));
    for text in hostile() {
        for sort in [SortOrder::Relevance, SortOrder::PriceAsc, SortOrder::Rating] {
            let query = ProductQuery { text: text.clone(), sort, ..Default::default() };
            let result = index.search(&query);
            let shown: String = text.chars().take(40).collect();
            let result = result.unwrap_or_else(|e| panic!("{shown:?} failed: {e}"));
            assert!(result.hits.len() as u64 <= result.total, "{shown:?}");
            // Every page of a hostile query paginates too.
            if let Some(cursor) = result.next_cursor {
                index.search(&ProductQuery { after: Some(cursor), ..query }).unwrap();
            }
        }
    }
}

#[test]
fn hostile_text_is_still_searched_as_words() {
    let index = index_of(&listing_events(&fixed_catalogue()));
    let find = |text: &str| ids(&index, &ProductQuery::text(text));
    // Query syntax is just separators around words.
    assert_eq!(find("title:kettle"), find("title kettle"));
    assert_eq!(find("\"stainless kettle\""), [9]);
    assert_eq!(find("(kettle)"), [9]);
    assert_eq!(find("kettle AND NOT"), find("kettle and not"));
    // Only words too long to be indexed: nothing, not everything.
    assert!(find(&"x".repeat(10_240)).is_empty());
    // Nothing but separators: everything (like an empty query).
    assert_eq!(find("\"(::)\"").len(), 10);
}
