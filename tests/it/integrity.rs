//! Integrity under concurrency: racing creates, racing membership changes, deletes that
//! race with PATCH. Threads against a real in-process server.

use serde_json::json;

use crate::common::{user_body, TestServer};

/// N concurrent creates of one userName in mixed case: exactly one 201, the rest 409
/// `uniqueness`, never a 500 (peers.md item 7).
#[test]
fn racing_creates_of_one_user_name_give_one_201_and_409s() {
    let s = TestServer::start();
    let names = [
        "Racer@Example.com",
        "racer@example.com",
        "RACER@EXAMPLE.COM",
    ];
    let statuses: Vec<(u16, String)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..24)
            .map(|i| {
                let s = &s;
                scope.spawn(move || {
                    let r = s.post("/Users", &user_body(names[i % names.len()]));
                    (r.status, r.text)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let created = statuses.iter().filter(|(st, _)| *st == 201).count();
    assert_eq!(created, 1, "{statuses:?}");
    for (status, text) in statuses.iter().filter(|(st, _)| *st != 201) {
        assert_eq!(*status, 409, "{text}");
        assert!(text.contains("\"uniqueness\""), "{text}");
    }
    assert_eq!(s.total("Users"), 1);
}

#[test]
fn racing_creates_of_one_group_name_give_one_201_and_409s() {
    let s = TestServer::start();
    let statuses: Vec<u16> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..16)
            .map(|i| {
                let s = &s;
                scope.spawn(move || {
                    let name = if i % 2 == 0 { "Finance" } else { "FINANCE" };
                    s.post(
                        "/Groups",
                        &json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": name}),
                    )
                    .status
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(
        statuses.iter().filter(|&&st| st == 201).count(),
        1,
        "{statuses:?}"
    );
    assert!(
        statuses.iter().all(|&st| st == 201 || st == 409),
        "{statuses:?}"
    );
}

/// Users deleted while PATCHes add them to a group: every PATCH either adds an existing user
/// or fails with 400, and the group never names a user that does not exist.
#[test]
fn deletes_racing_member_adds_leave_no_dangling_members() {
    let s = TestServer::start();
    let gid = s
        .post(
            "/Groups",
            &json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "G"}),
        )
        .json()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let users: Vec<String> = (0..20)
        .map(|i| {
            s.post("/Users", &user_body(&format!("d{i}"))).json()["id"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    std::thread::scope(|scope| {
        for u in &users {
            let (s, gid) = (&s, &gid);
            scope.spawn(move || {
                let r = s.call(
                    "PATCH",
                    &format!("/Groups/{gid}"),
                    Some(
                        &json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                        "Operations": [{"op": "add", "path": "members", "value": [{"value": u}]}]}),
                    ),
                );
                assert!(r.status == 204 || r.status == 400, "{}", r.text);
            });
            scope.spawn(move || {
                let r = s.call("DELETE", &format!("/Users/{u}"), None);
                assert_eq!(r.status, 204, "{}", r.text);
            });
        }
    });
    let group = s.get(&format!("/Groups/{gid}")).json();
    assert!(
        group
            .get("members")
            .is_none_or(|m| m.as_array().is_some_and(|a| a.is_empty())),
        "{group}"
    );
    assert_eq!(s.total("Users"), 0);
}

/// Groups may contain groups, but never in a cycle (A ∋ B ∋ C, then C ∋ A is refused).
#[test]
fn nested_groups_are_allowed_but_cycles_are_refused() {
    let s = TestServer::start();
    let make = |name: &str| {
        s.post(
            "/Groups",
            &json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": name}),
        )
        .json()["id"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let (a, b, c) = (make("A"), make("B"), make("C"));
    let add = |group: &str, member: &str| {
        s.call(
            "PATCH",
            &format!("/Groups/{group}"),
            Some(&json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                "Operations": [{"op": "add", "path": "members", "value": [{"value": member, "type": "Group"}]}]})),
        )
    };
    assert_eq!(add(&a, &b).status, 204);
    assert_eq!(add(&b, &c).status, 204);
    let r = add(&c, &a);
    assert_eq!(r.status, 400, "{}", r.text);
    assert!(r.text.contains("cycle"), "{}", r.text);
    let r = add(&b, &a);
    assert_eq!(r.status, 400, "{}", r.text);
    // The same through PUT.
    let r = s.call(
        "PUT",
        &format!("/Groups/{c}"),
        Some(
            &json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "C",
            "members": [{"value": a}]}),
        ),
    );
    assert_eq!(r.status, 400, "{}", r.text);
    let members = s.get(&format!("/Groups/{c}")).json();
    assert!(members
        .get("members")
        .is_none_or(|m| m.as_array().is_some_and(|v| v.is_empty())));
}
