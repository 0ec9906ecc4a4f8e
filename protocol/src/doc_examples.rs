//! The example frames of `docs/protocol.md`, for the tests that hold the
//! code to them: a reference that drifts from the code fails the build.

use std::collections::BTreeSet;

use serde_json::Value;

/// `docs/protocol.md`, read from the repository.
pub fn protocol() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/protocol.md");
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Section `number` (`## <number>. ...`), up to the next section.
pub fn section(doc: &str, number: u32) -> &str {
    let heading = format!("\n## {number}. ");
    let start = doc
        .find(&heading)
        .unwrap_or_else(|| panic!("no section {number}"));
    let body = &doc[start + heading.len()..];
    body.find("\n## ").map_or(body, |end| &body[..end])
}

/// The non-blank lines of the first ```json block after `heading` in
/// `text`: one frame per line.
pub fn block_after<'a>(text: &'a str, heading: &str) -> Vec<&'a str> {
    let after = text
        .split_once(&format!("\n{heading}\n"))
        .unwrap_or_else(|| panic!("no heading {heading:?}"))
        .1;
    let block = after
        .split_once("```json\n")
        .and_then(|(_, rest)| rest.split_once("```"))
        .unwrap_or_else(|| panic!("no json block after {heading:?}"))
        .0;
    block.lines().filter(|l| !l.trim().is_empty()).collect()
}

/// Parses an example line as JSON.
pub fn json(line: &str) -> Value {
    serde_json::from_str(line).unwrap_or_else(|e| panic!("{line}: {e}"))
}

/// Whether `have` shows everything `want` does: every key of an object with
/// the value it has there (`have` may hold more keys), arrays element by
/// element, anything else equal. A frame parsed and written back shows all
/// of an example only if the parser read every field the example has.
pub fn shows(have: &Value, want: &Value) -> bool {
    match (have, want) {
        (Value::Object(have), Value::Object(want)) => want
            .iter()
            .all(|(key, w)| have.get(key).is_some_and(|h| shows(h, w))),
        (Value::Array(have), Value::Array(want)) => {
            have.len() == want.len() && have.iter().zip(want).all(|(h, w)| shows(h, w))
        }
        _ => have == want,
    }
}

/// The error codes the tables of `doc` list: the names in backquotes in
/// the first column of every table whose first column is headed `code`.
/// (The close codes table is headed so too, but names its codes in plain
/// numbers.)
pub fn error_codes(doc: &str) -> BTreeSet<String> {
    let first_cell = |row: &str| {
        row.trim()
            .strip_prefix('|')
            .and_then(|row| row.split('|').next())
            .map(str::trim)
            .map(str::to_owned)
    };
    let mut codes = BTreeSet::new();
    let mut in_code_table = false;
    for line in doc.lines() {
        let Some(cell) = first_cell(line) else {
            in_code_table = false;
            continue;
        };
        if cell == "code" {
            in_code_table = true;
        } else if in_code_table {
            codes.extend(
                cell.split('`')
                    .skip(1)
                    .step_by(2)
                    .filter(|name| !name.is_empty())
                    .map(str::to_owned),
            );
        }
    }
    codes
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_value_shows_what_it_holds_but_not_what_it_lacks_or_differs_in() {
        let have =
            json!({"op": "join", "topic": "chat:a", "since": null, "list": [1, {"a": 1, "b": 2}]});
        assert!(shows(&have, &json!({"op": "join", "list": [1, {"a": 1}]})));
        assert!(!shows(&have, &json!({"op": "join", "extra": 1})));
        assert!(!shows(&have, &json!({"topic": "chat:b"})));
        assert!(!shows(&have, &json!({"list": [1]})));
    }

    #[test]
    fn code_tables_give_their_first_column_names() {
        let doc = concat!(
            "| code | when |\n|---|---|\n",
            "| `bad_frame` | a bad `op` |\n",
            "| `empty_text`, `bad_text` | a text |\n",
            "\nprose `not_a_code`\n\n",
            "| field | type |\n|---|---|\n| `title` | string |\n",
            "| code | socket | when |\n|---|---|---|\n| 1000 normal | both | `bye` |\n",
        );
        let codes: Vec<String> = error_codes(doc).into_iter().collect();
        assert_eq!(codes, ["bad_frame", "bad_text", "empty_text"]);
    }

    #[test]
    fn sections_end_where_the_next_begins() {
        let doc = concat!(
            "# T\n\n## 1. One\n\n### Requests\n\n",
            "```json\n{\"op\":\"a\"}\n\n{\"op\":\"b\"}\n```\n\n",
            "## 2. Two\nrest",
        );
        let one = section(doc, 1);
        assert!(!one.contains("rest"));
        assert_eq!(
            block_after(one, "### Requests"),
            [r#"{"op":"a"}"#, r#"{"op":"b"}"#]
        );
        assert_eq!(section(doc, 2).trim(), "Two\nrest");
    }
}
