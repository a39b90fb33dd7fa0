//! A document's JSON text, written once per write: the document column stores it and the
//! write's provisioning event embeds it (both backends).

use super::StoreError;
use crate::scim::events::Change;

/// A value's JSON, serialised into a buffer sized for a typical document (serde_json's own
/// starts at 128 bytes and grew four or five times for each; those `realloc`s were 3% of the
/// server's instructions in a sync, callgrind). UTF-8, as serde_json writes it.
pub(crate) struct JsonText(Vec<u8>);

impl JsonText {
    pub(crate) fn of(value: &impl serde::Serialize) -> Result<JsonText, StoreError> {
        let mut text = Vec::with_capacity(1024);
        serde_json::to_writer(&mut text, value).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        Ok(JsonText(text))
    }

    /// `object` (something serde writes as a JSON object) with one more member, `key`,
    /// whose value is JSON text already written: a change's event reuses the document its
    /// write stored instead of serialising it a second time (1.8% of a sync's instructions).
    pub(crate) fn object_with(
        object: &impl serde::Serialize,
        key: &str,
        value: &JsonText,
    ) -> Result<JsonText, StoreError> {
        let mut text = Vec::with_capacity(value.0.len() + 512);
        serde_json::to_writer(&mut text, object).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        if text.pop() != Some(b'}') {
            return Err(StoreError::Corrupt("not a JSON object".into()));
        }
        if text.len() > 1 {
            text.push(b',');
        }
        serde_json::to_writer(&mut text, key).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        text.push(b':');
        text.extend_from_slice(&value.0);
        text.push(b'}');
        Ok(JsonText(text))
    }

    /// The event text of `change`. `stored_doc` is the JSON text the write stored for the
    /// document the change carries (a create's or replace's), used as it is instead of
    /// serialising the document again.
    pub(crate) fn of_change(
        mut change: Change<'_>,
        stored_doc: Option<&JsonText>,
    ) -> Result<JsonText, StoreError> {
        match (change.doc.take(), stored_doc) {
            (Some(doc), Some(stored)) => {
                debug_assert_eq!(
                    JsonText::of(&doc)?.0,
                    stored.0,
                    "the stored text is the change's document"
                );
                JsonText::object_with(&change, "doc", stored)
            }
            (doc, _) => {
                change.doc = doc;
                JsonText::of(&change)
            }
        }
    }

    pub(crate) fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The text as a `String` (no copy), for a parameter that outlives the `JsonText`.
    pub(crate) fn into_string(self) -> Result<String, StoreError> {
        String::from_utf8(self.0).map_err(|e| StoreError::Corrupt(e.to_string()))
    }

    /// The text as a `str`, for a driver that binds text parameters as `&str`.
    pub(crate) fn as_str(&self) -> Result<&str, StoreError> {
        std::str::from_utf8(&self.0).map_err(|e| StoreError::Corrupt(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    #[test]
    fn an_object_with_a_written_member_is_the_object_serialised_whole() {
        let doc = json!({"userName": "a\"b", "emails": [{"value": "a@x"}]});
        let written = JsonText::of(&doc).unwrap();
        for object in [json!({"op": "create", "meta": {"version": 1}}), json!({})] {
            let text = JsonText::object_with(&object, "doc", &written).unwrap();
            let mut whole = object.clone();
            whole["doc"] = doc.clone();
            let parsed: Value = serde_json::from_slice(text.as_bytes()).unwrap();
            assert_eq!(parsed, whole);
        }
        // The key is escaped as JSON; something that is not an object is refused.
        let text = JsonText::object_with(&json!({}), "a\"b", &written).unwrap();
        let parsed: Value = serde_json::from_slice(text.as_bytes()).unwrap();
        assert_eq!(parsed["a\"b"], doc);
        assert!(JsonText::object_with(&json!([1]), "doc", &written).is_err());
    }
}
