//! Reading resources together with their references (`get_with_references`,
//! `list_with_references`) against `get`, `list` and `references` read apart, on both
//! backends.

use serde_json::json;

use super::filter_tests::{create, postgres, sqlite, Opened, A, BASE, T};
use crate::scim::filter;
use crate::scim::list::{Page, Sort, SortOrder};
use crate::scim::ResourceKind;

/// The one-read GET gives exactly what `get` and `references` give apart, and nothing for
/// another tenant's or kind's id.
fn get_with_references_is_get_and_references_in_one_read(open: fn() -> Option<Opened>) {
    let Some((_guard, s)) = open() else {
        return;
    };
    let alice = create(&*s, ResourceKind::User, json!({"userName": "alice"}));
    let bob = create(&*s, ResourceKind::User, json!({"userName": "bob"}));
    let g = create(
        &*s,
        ResourceKind::Group,
        json!({"displayName": "G", "members": [{"value": alice.id}, {"value": bob.id}]}),
    );
    // Alice is in two groups: her references come in the groups' creation order.
    create(
        &*s,
        ResourceKind::Group,
        json!({"displayName": "H", "members": [{"value": alice.id}]}),
    );
    assert_eq!(
        s.references(T, ResourceKind::User, &alice.id)
            .unwrap()
            .iter()
            .map(|r| r.display.as_deref())
            .collect::<Vec<_>>(),
        [Some("G"), Some("H")]
    );
    for (kind, id) in [
        (ResourceKind::User, &alice.id),
        (ResourceKind::User, &bob.id),
        (ResourceKind::Group, &g.id),
    ] {
        let alone = s.get(T, kind, id).unwrap().unwrap();
        let refs = s.references(T, kind, id).unwrap();
        assert!(!refs.is_empty());
        let (with, got) = s.get_with_references(T, kind, id).unwrap().unwrap();
        assert_eq!(
            (&with.id, &with.doc, &with.meta),
            (&alone.id, &alone.doc, &alone.meta)
        );
        assert_eq!(got, refs);
    }
    assert!(s
        .get_with_references(T, ResourceKind::Group, &alice.id)
        .unwrap()
        .is_none());
    s.create_tenant("acme", &A).unwrap();
    assert!(s
        .get_with_references("acme", ResourceKind::User, &alice.id)
        .unwrap()
        .is_none());
}

/// A page with its references is the page `list` gives, each resource with what
/// `references` gives, and the same total, on a first page short or full and a later one.
fn list_with_references_is_list_and_the_references_of_each(open: fn() -> Option<Opened>) {
    let Some((_guard, s)) = open() else {
        return;
    };
    let users: Vec<_> = (0..5)
        .map(|i| {
            create(
                &*s,
                ResourceKind::User,
                json!({"userName": format!("u{i}")}),
            )
        })
        .collect();
    for (name, members) in [("G0", &users[..2]), ("G1", &users[1..4])] {
        let members: Vec<_> = members.iter().map(|u| json!({"value": u.id})).collect();
        create(
            &*s,
            ResourceKind::Group,
            json!({"displayName": name, "members": members}),
        );
    }
    let f = filter::parse(r#"userName sw "u""#).unwrap();
    // Descending by userName: the page keeps the sort's order, not the rows' creation order.
    let by_name = Sort {
        by: "userName".into(),
        order: SortOrder::Descending,
    };
    for (kind, sort) in [
        (ResourceKind::User, None),
        (ResourceKind::User, Some(&by_name)),
        (ResourceKind::Group, None),
    ] {
        // (6, 10): a page past the last match is empty, and its total still counts them.
        for (start_index, count) in [(1, 10), (1, 2), (2, 2), (5, 10), (6, 10)] {
            let page = Page { start_index, count };
            let filter = (kind == ResourceKind::User).then_some(&f);
            let (n, plain) = s.list(T, kind, filter, sort, page, BASE).unwrap();
            let (m, with) = s
                .list_with_references(T, kind, filter, sort, page, BASE)
                .unwrap();
            assert_eq!(n, m, "{kind:?} {start_index} {count}");
            assert_eq!(plain.len(), with.len());
            for (p, (w, refs)) in plain.iter().zip(&with) {
                assert_eq!((&p.id, &p.doc), (&w.id, &w.doc));
                assert_eq!(refs, &s.references(T, kind, &p.id).unwrap());
            }
        }
    }
    let page = Page {
        start_index: 1,
        count: 10,
    };
    // No match: an empty first page and a total of 0 (PostgreSQL answers it from one
    // statement); past the end of a match, the total still counts it.
    let none = filter::parse(r#"userName eq "nobody""#).unwrap();
    let (n, with) = s
        .list_with_references(T, ResourceKind::User, Some(&none), None, page, BASE)
        .unwrap();
    assert_eq!((n, with.len()), (0, 0));
    let one = filter::parse(r#"userName eq "u1""#).unwrap();
    let (n, with) = s
        .list_with_references(T, ResourceKind::User, Some(&one), None, page, BASE)
        .unwrap();
    assert_eq!((n, with.len()), (1, 1));
    assert_eq!(with[0].1.len(), 2, "u1 is in G0 and G1");
    let past = Page {
        start_index: 2,
        count: 10,
    };
    let (n, with) = s
        .list_with_references(T, ResourceKind::User, Some(&one), None, past, BASE)
        .unwrap();
    assert_eq!((n, with.len()), (1, 0));
    let (_, groups) = s
        .list_with_references(T, ResourceKind::Group, None, None, page, BASE)
        .unwrap();
    let sizes: Vec<usize> = groups.iter().map(|(_, refs)| refs.len()).collect();
    assert_eq!(sizes, [2, 3]);
}

on_both_backends!(
    get_with_references_is_get_and_references_in_one_read,
    list_with_references_is_list_and_the_references_of_each,
);
