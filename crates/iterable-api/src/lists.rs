//! Choosing the list of an audience from `GET /api/lists`: only a `Standard` list whose name
//! is exactly the audience key, never a Dynamic, Suppression or Internal one.

use serde::Deserialize;

/// `ListDetails` as `GET /api/lists` returns it; unknown keys are ignored.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListDetails {
    pub id: i64,
    pub name: String,
    #[serde(default)]
    pub list_type: Option<String>,
    #[serde(default)]
    pub created_at: Option<i64>,
    #[serde(default)]
    pub description: Option<String>,
}

/// `GetListsResponse`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct GetListsResponse {
    #[serde(default)]
    pub lists: Vec<ListDetails>,
}

impl ListDetails {
    /// Static lists: `Standard`, or no type at all (responses from before list types existed).
    pub fn is_standard(&self) -> bool {
        self.list_type.as_deref().is_none_or(|t| t == "Standard")
    }
}

/// The list an audience maps to, among `lists`: a Standard list named exactly `key`
/// (case-sensitive). With several, the oldest (lowest id) wins, so every caller agrees
/// whatever order Iterable lists them in.
pub fn choose_list<'a>(lists: &'a [ListDetails], key: &str) -> Option<&'a ListDetails> {
    lists
        .iter()
        .filter(|l| l.name == key && l.is_standard())
        .min_by_key(|l| l.id)
}

/// Whether an external audience id names a list that exists in `lists` (Segment's
/// getAudience check).
pub fn find_by_id(lists: &[ListDetails], id: i64) -> Option<&ListDetails> {
    lists.iter().find(|l| l.id == id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lists(json: &str) -> Vec<ListDetails> {
        serde_json::from_str::<GetListsResponse>(json)
            .unwrap()
            .lists
    }

    #[test]
    fn only_standard_lists_with_the_exact_name() {
        // V34's lists, plus the kinds Segment wrongly accepted.
        let l = lists(
            r#"{"lists":[{"id":9,"name":"vip","listType":"Dynamic"},{"id":5,"name":"VIP"},
               {"id":7,"name":"vip","listType":"Standard"},{"id":6,"name":"vip"},
               {"id":3,"name":"vip","listType":"Suppression","isGlobalSuppressionEnabled":false}]}"#,
        );
        assert_eq!(choose_list(&l, "vip").map(|x| x.id), Some(6));
        assert_eq!(choose_list(&l, "VIP").map(|x| x.id), Some(5));
        assert_eq!(choose_list(&l, "vip ").map(|x| x.id), None);
        assert_eq!(choose_list(&lists(r#"{"lists":[]}"#), "vip"), None);
        assert_eq!(find_by_id(&l, 9).map(|x| x.name.as_str()), Some("vip"));
        assert!(find_by_id(&l, 999).is_none());
    }
}
