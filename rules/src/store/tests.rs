//! Both stores through the same checks: batches are all or nothing, every
//! changed record has its audit entry, and the trail reads back filtered.

use time::macros::datetime;
use time::OffsetDateTime;

use super::*;
use crate::model::Dpid;

const T0: OffsetDateTime = datetime!(2026-03-01 10:00 UTC);
const T1: OffsetDateTime = datetime!(2026-03-01 11:00 UTC);

fn ctx(actor: &str) -> AuditContext {
    AuditContext {
        actor: actor.into(),
        source: Some("192.0.2.9:4000".parse().unwrap()),
        request_id: Some("req-1".into()),
    }
}

fn new(p: &str) -> NewExemption {
    NewExemption::new(p.parse().unwrap())
}

fn stores() -> Vec<(Box<dyn ExemptionStore>, Option<tempfile::TempDir>)> {
    let dir = tempfile::tempdir().unwrap();
    let sled = SledStore::open(dir.path()).unwrap();
    vec![(Box::new(MemStore::new()), None), (Box::new(sled), Some(dir))]
}

#[test]
fn grant_and_revoke_are_audited_in_order() {
    for (s, _dir) in stores() {
        let a = s.insert(new("203.0.113.7"), &ctx("crm"), T0).unwrap();
        let gone = s.remove(a.id, AuditAction::Revoke, &ctx("desk"), T1).unwrap();
        assert_eq!(gone.as_ref(), Some(&a));
        assert_eq!(s.remove(a.id, AuditAction::Revoke, &ctx("desk"), T1).unwrap(), None);
        let trail = s.audit(&AuditQuery::default()).unwrap();
        assert_eq!(trail.len(), 2, "an unknown id changes nothing and is not audited");
        assert_eq!((trail[0].seq, trail[0].action, trail[0].actor.as_str()), (2, AuditAction::Revoke, "desk"));
        assert_eq!((trail[0].before.as_ref(), trail[0].after.as_ref()), (Some(&a), None));
        assert_eq!((trail[1].seq, trail[1].action, trail[1].at), (1, AuditAction::Grant, T0));
        assert_eq!((trail[1].before.as_ref(), trail[1].after.as_ref()), (None, Some(&a)));
        assert_eq!(trail[1].source, Some("192.0.2.9:4000".parse().unwrap()));
        assert_eq!(trail[1].request_id.as_deref(), Some("req-1"));
    }
}

#[test]
fn a_batch_with_a_conflict_writes_nothing() {
    for (s, _dir) in stores() {
        let a = s.insert(new("203.0.113.7"), &ctx("crm"), T0).unwrap();
        let b = s.insert(new("198.51.100.0/24"), &ctx("crm"), T0).unwrap();
        let mut change = Change::new(AuditAction::Sync);
        change.remove.push(b.id);
        change.create.push(new("192.0.2.1"));
        change.create.push(new("203.0.113.7/32")); // a's identity, and a stays
        let err = s.commit(change, &ctx("sync"), T1).unwrap_err();
        assert!(matches!(err, StoreError::Conflict { existing, .. } if existing == a.id), "{err}");
        assert_eq!(s.list().unwrap(), vec![a.clone(), b.clone()]);
        assert_eq!(s.audit(&AuditQuery::default()).unwrap().len(), 2);

        // Two creations with one identity in one batch conflict too.
        let mut change = Change::new(AuditAction::Sync);
        change.create.push(new("192.0.2.1"));
        change.create.push(new("192.0.2.1"));
        assert!(matches!(s.commit(change, &ctx("sync"), T1), Err(StoreError::Conflict { .. })));
        assert_eq!(s.list().unwrap().len(), 2);
    }
}

#[test]
fn a_batch_can_remove_and_recreate_one_identity_and_update_in_place() {
    for (s, _dir) in stores() {
        let a = s.insert(new("203.0.113.7"), &ctx("crm"), T0).unwrap();
        let b = s.insert(new("198.51.100.0/24"), &ctx("crm"), T0).unwrap();
        let mut change = Change::new(AuditAction::Sync);
        change.remove.push(a.id);
        change.create.push(NewExemption { note: Some("again".into()), ..new("203.0.113.7") });
        let mut b2 = b.clone();
        b2.note = Some("renewed".into());
        b2.expires_at = Some(datetime!(2027-01-01 00:00 UTC));
        b2.created_at = T1; // ignored: created_at is kept
        change.update.push(b2.clone());
        let done = s.commit(change, &ctx("sync"), T1).unwrap();
        assert_eq!(done.removed, vec![a.clone()]);
        assert_eq!(done.created.len(), 1);
        assert!(done.created[0].id > b.id, "ids are never reused");
        b2.created_at = T0;
        assert_eq!(done.updated, vec![(b.clone(), b2.clone())]);
        assert_eq!(s.get(b.id).unwrap(), Some(b2.clone()));
        let trail = s.audit(&AuditQuery::default()).unwrap();
        let seqs: Vec<u64> = trail.iter().map(|e| e.seq).collect();
        assert_eq!(seqs, vec![5, 4, 3, 2, 1]);
        assert!(trail[..3].iter().all(|e| e.action == AuditAction::Sync && e.at == T1));
        // Updating a record that is not there fails, and writes nothing.
        let mut change = Change::new(AuditAction::Sync);
        change.update.push(a.clone());
        assert!(matches!(s.commit(change, &ctx("sync"), T1), Err(StoreError::NotFound(id)) if id == a.id));
        assert_eq!(s.audit(&AuditQuery::default()).unwrap().len(), 5);
    }
}

#[test]
fn audit_filters_by_subscriber_time_action_and_pages() {
    for (s, _dir) in stores() {
        let a = s.insert(new("203.0.113.0/24"), &ctx("crm"), T0).unwrap();
        let scoped = NewExemption { scope: Scope::from_list(Some(vec![Dpid(1)])), ..new("2001:db8::/48") };
        s.insert(scoped, &ctx("crm"), T0).unwrap();
        s.remove(a.id, AuditAction::Expire, &AuditContext::port25d(), T1).unwrap();
        let q = |f: &dyn Fn(&mut AuditQuery)| {
            let mut q = AuditQuery::default();
            f(&mut q);
            s.audit(&q).unwrap().iter().map(|e| e.seq).collect::<Vec<_>>()
        };
        assert_eq!(q(&|_| {}), vec![3, 2, 1]);
        assert_eq!(q(&|q| q.subscriber = Some("203.0.113.9".parse().unwrap())), vec![3, 1]);
        assert_eq!(q(&|q| q.subscriber = Some("203.0.0.0/16".parse().unwrap())), Vec::<u64>::new());
        assert_eq!(q(&|q| q.subscriber = Some("2001:db8::1".parse().unwrap())), vec![2]);
        assert_eq!(q(&|q| q.since = Some(T1)), vec![3]);
        assert_eq!(q(&|q| q.action = Some(AuditAction::Grant)), vec![2, 1]);
        assert_eq!(q(&|q| q.limit = 2), vec![3, 2]);
        assert_eq!(q(&|q| q.before_seq = Some(3)), vec![2, 1]);
        let expire = &s.audit(&AuditQuery::default()).unwrap()[0];
        assert_eq!((expire.actor.as_str(), expire.source, expire.request_id.as_ref()), ("port25d", None, None));
    }
}

#[test]
fn sled_audit_survives_reopen_and_keeps_counting() {
    let dir = tempfile::tempdir().unwrap();
    {
        let s = SledStore::open(dir.path()).unwrap();
        let a = s.insert(new("203.0.113.7"), &ctx("crm"), T0).unwrap();
        s.remove(a.id, AuditAction::Revoke, &ctx("crm"), T0).unwrap();
    }
    let s = SledStore::open(dir.path()).unwrap();
    s.insert(new("203.0.113.8"), &ctx("crm"), T1).unwrap();
    let seqs: Vec<u64> = s.audit(&AuditQuery::default()).unwrap().iter().map(|e| e.seq).collect();
    assert_eq!(seqs, vec![3, 2, 1]);
}

#[test]
fn sled_opens_a_schema_1_store_with_old_records() {
    let dir = tempfile::tempdir().unwrap();
    {
        // No flusher thread: it could hold the file lock past the drop.
        let db = sled::Config::new().path(dir.path()).flush_every_ms(None).open().unwrap();
        db.open_tree("meta").unwrap().insert("schema", "1").unwrap();
        let old = br#"{"id":4,"subscriber":"203.0.113.7/32","created_at":"2026-01-02T03:04:05Z","switches":null}"#;
        db.open_tree("exemptions").unwrap().insert(4u64.to_be_bytes(), &old[..]).unwrap();
        db.open_tree("identity").unwrap().insert("203.0.113.7/32|*", &4u64.to_be_bytes()).unwrap();
        db.flush().unwrap();
    }
    let s = SledStore::open(dir.path()).unwrap();
    let list = s.list().unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!((list[0].expires_at, list[0].external_id.as_deref()), (None, None));
    assert!(matches!(s.insert(new("203.0.113.7"), &ctx("crm"), T0), Err(StoreError::Conflict { .. })));
    assert!(s.audit(&AuditQuery::default()).unwrap().is_empty());
}

#[test]
fn sled_refuses_a_newer_schema() {
    let dir = tempfile::tempdir().unwrap();
    {
        // No flusher thread: it could hold the file lock past the drop.
        let db = sled::Config::new().path(dir.path()).flush_every_ms(None).open().unwrap();
        db.open_tree("meta").unwrap().insert("schema", "4").unwrap();
        db.flush().unwrap();
    }
    let err = SledStore::open(dir.path()).err().expect("schema 4 refused").to_string();
    assert!(err.contains("schema"), "{err}");
}

#[test]
fn ids_count_up_by_one_across_reopens_and_a_conflict_uses_none() {
    let dir = tempfile::tempdir().unwrap();
    {
        let s = SledStore::open(dir.path()).unwrap();
        assert_eq!(s.insert(new("203.0.113.1"), &ctx("crm"), T0).unwrap().id, ExemptionId(1));
        assert!(matches!(s.insert(new("203.0.113.1"), &ctx("crm"), T0), Err(StoreError::Conflict { .. })));
        let b = s.insert(new("203.0.113.2"), &ctx("crm"), T0).unwrap();
        assert_eq!(b.id, ExemptionId(2), "the refused grant took no id");
        s.remove(b.id, AuditAction::Revoke, &ctx("crm"), T0).unwrap();
    }
    for expected in [3, 4] {
        let s = SledStore::open(dir.path()).unwrap();
        let e = s.insert(new(&format!("203.0.113.{expected}")), &ctx("crm"), T1).unwrap();
        assert_eq!(e.id, ExemptionId(expected), "ids go on by one after a reopen, and 2 is not reused");
    }
}

#[test]
fn sled_upgrades_a_schema_2_store_above_every_id_it_used() {
    let dir = tempfile::tempdir().unwrap();
    {
        // Schema 2 took ids from generate_id: ids 1,000,001 (removed, seen
        // only in the audit trail) and 7 (still stored).
        let s = SledStore::open(dir.path()).unwrap();
        s.insert(new("203.0.113.7"), &ctx("crm"), T0).unwrap();
        drop(s);
        let db = sled::Config::new().path(dir.path()).flush_every_ms(None).open().unwrap();
        let meta = db.open_tree("meta").unwrap();
        meta.insert("schema", "2").unwrap();
        meta.remove("last_id").unwrap();
        let audit = db.open_tree("audit").unwrap();
        let mut entry: serde_json::Value =
            serde_json::from_slice(&audit.get(1u64.to_be_bytes()).unwrap().unwrap()).unwrap();
        entry["exemption_id"] = 1_000_001.into();
        entry["after"]["id"] = 1_000_001.into();
        audit.insert(1u64.to_be_bytes(), serde_json::to_vec(&entry).unwrap()).unwrap();
        db.flush().unwrap();
    }
    let s = SledStore::open(dir.path()).unwrap();
    let e = s.insert(new("203.0.113.8"), &ctx("crm"), T1).unwrap();
    // Above the audit trail's 1,000,001 (and above whatever sled's own
    // generator reached, which jumps on every open); from then on, by one.
    assert!(e.id.0 > 1_000_001, "{}", e.id);
    let f = s.insert(new("203.0.113.9"), &ctx("crm"), T1).unwrap();
    assert_eq!(f.id.0, e.id.0 + 1);
    assert_eq!(s.last_audit_seq().unwrap(), 3);
}
