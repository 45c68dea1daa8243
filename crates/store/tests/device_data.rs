//! The device data tables, on every test database: managed objects and their fragments,
//! external ids, measurements, events, alarms, operations with their compare-and-set
//! status updates, and new device requests — each kept per tenant.

#![allow(clippy::unwrap_used)]

mod common;

use common::databases;
use portico_store::{
    AlarmChange, AlarmFilter, AlarmRecord, DataFilter, DataKind, DataRecord, ExternalIdRecord,
    Fragments, ManagedObjectFilter, NewDeviceRequestRecord, NewDeviceStatus, OperationChange,
    OperationFilter, OperationStatus, OperationUpdate, Page, Store, StoreError,
};
use serde_json::{json, Value};

fn doc(value: Value) -> Fragments {
    match value {
        Value::Object(map) => map,
        other => panic!("not an object: {other}"),
    }
}

fn page(offset: i64, limit: i64) -> Page {
    Page { offset, limit }
}

async fn device(store: &Store, tenant: &str, owner: &str, name: &str) -> i64 {
    store
        .create_managed_object(
            tenant,
            owner,
            &doc(json!({"name": name, "type": "c8y_Linux", "c8y_IsDevice": {}})),
            1_000,
        )
        .await
        .unwrap()
        .id
}

fn data(tenant: &str, source: i64, data_type: &str, time_ms: i64) -> DataRecord {
    DataRecord {
        id: 0,
        tenant: tenant.into(),
        source,
        data_type: data_type.into(),
        time_ms,
        document: doc(json!({"c8y_Temperature": {"T": {"value": time_ms, "unit": "C"}}})),
        created_ms: time_ms,
    }
}

#[tokio::test]
async fn managed_objects_are_filtered_paged_merged_and_kept_per_tenant() {
    for db in databases().await {
        let store = db.open().await;
        let a = device(&store, "acme", "device_1", "one").await;
        let b = device(&store, "acme", "device_2", "two").await;
        let other = device(&store, "globex", "device_1", "elsewhere").await;
        let asset = store
            .create_managed_object("acme", "alice", &doc(json!({"type": "building"})), 2_000)
            .await
            .unwrap()
            .id;
        let mut ids = vec![a, b, other, asset];
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), 4, "ids are unique across tenants");

        let all = |filter: ManagedObjectFilter| {
            let store = store.clone();
            async move {
                store
                    .managed_objects("acme", &filter, Page::all())
                    .await
                    .unwrap()
                    .iter()
                    .map(|o| o.id)
                    .collect::<Vec<_>>()
            }
        };
        assert_eq!(all(ManagedObjectFilter::default()).await, vec![a, b, asset]);
        let devices = ManagedObjectFilter {
            fragment: Some("c8y_IsDevice".into()),
            ..Default::default()
        };
        assert_eq!(all(devices.clone()).await, vec![a, b]);
        assert_eq!(
            store.count_managed_objects("acme", &devices).await.unwrap(),
            2
        );
        assert_eq!(
            store
                .count_managed_objects("acme", &ManagedObjectFilter::default())
                .await
                .unwrap(),
            3
        );
        // Fragment names match exactly: no LIKE wildcards, no case folding.
        let near = ManagedObjectFilter {
            fragment: Some("c8y_isdevice".into()),
            ..Default::default()
        };
        assert!(all(near).await.is_empty());
        let typed = ManagedObjectFilter {
            object_type: Some("building".into()),
            ..Default::default()
        };
        assert_eq!(all(typed).await, vec![asset]);
        let owned = ManagedObjectFilter {
            owner: Some("device_2".into()),
            ..Default::default()
        };
        assert_eq!(all(owned).await, vec![b]);

        let first = store
            .managed_objects("acme", &ManagedObjectFilter::default(), page(0, 2))
            .await
            .unwrap();
        let second = store
            .managed_objects("acme", &ManagedObjectFilter::default(), page(2, 2))
            .await
            .unwrap();
        let past = store
            .managed_objects("acme", &ManagedObjectFilter::default(), page(4, 2))
            .await
            .unwrap();
        assert_eq!(first.len(), 2);
        assert_eq!(second.iter().map(|o| o.id).collect::<Vec<_>>(), vec![asset]);
        assert!(past.is_empty());

        let updated = store
            .update_managed_object(
                "acme",
                a,
                &doc(json!({"c8y_IsDevice": null, "name": "renamed", "c8y_Hardware": {"model": "x"}})),
                5_000,
            )
            .await
            .unwrap()
            .unwrap();
        assert_eq!(updated.name, "renamed");
        assert_eq!(updated.updated_ms, 5_000);
        assert_eq!(updated.created_ms, 1_000);
        assert!(!updated.document.contains_key("c8y_IsDevice"));
        assert_eq!(updated.document["type"], "c8y_Linux");
        assert_eq!(
            store.managed_object("acme", a).await.unwrap().unwrap(),
            updated
        );
        let devices = ManagedObjectFilter {
            fragment: Some("c8y_IsDevice".into()),
            ..Default::default()
        };
        assert_eq!(
            all(devices).await,
            vec![b],
            "the removed fragment no longer matches"
        );

        // Another tenant's object is invisible and unchangeable.
        assert!(store.managed_object("acme", other).await.unwrap().is_none());
        assert!(store
            .update_managed_object("acme", other, &doc(json!({"x": 1})), 6_000)
            .await
            .unwrap()
            .is_none());
        assert_eq!(
            store
                .managed_object("globex", other)
                .await
                .unwrap()
                .unwrap()
                .name,
            "elsewhere"
        );
        db.finish(store).await;
    }
}

#[tokio::test]
async fn external_ids_are_unique_per_tenant_and_need_their_object() {
    for db in databases().await {
        let store = db.open().await;
        let a = device(&store, "acme", "device_1", "one").await;
        let g = device(&store, "globex", "device_1", "one").await;
        let ext = |tenant: &str, object_id| ExternalIdRecord {
            tenant: tenant.into(),
            id_type: "c8y_Serial".into(),
            external_id: "SN-1".into(),
            object_id,
            created_ms: 1_000,
        };
        store.add_external_id(&ext("acme", a)).await.unwrap();
        assert!(matches!(
            store.add_external_id(&ext("acme", a)).await,
            Err(StoreError::Exists { .. })
        ));
        // The same serial in another tenant is another external id.
        store.add_external_id(&ext("globex", g)).await.unwrap();
        // An object of another tenant cannot be named.
        let mut foreign = ext("acme", g);
        foreign.external_id = "SN-2".into();
        assert!(matches!(
            store.add_external_id(&foreign).await,
            Err(StoreError::NotFound { .. })
        ));
        assert_eq!(
            store
                .external_id("acme", "c8y_Serial", "SN-1")
                .await
                .unwrap()
                .unwrap()
                .object_id,
            a
        );
        assert!(store
            .external_id("acme", "c8y_Other", "SN-1")
            .await
            .unwrap()
            .is_none());
        assert_eq!(
            store.external_ids_of("acme", a).await.unwrap(),
            vec![ext("acme", a)]
        );
        assert!(store.external_ids_of("acme", g).await.unwrap().is_empty());
        db.finish(store).await;
    }
}

#[tokio::test]
async fn measurements_and_events_are_queried_by_source_type_time_and_owner() {
    for db in databases().await {
        let store = db.open().await;
        let a = device(&store, "acme", "device_1", "one").await;
        let b = device(&store, "acme", "device_2", "two").await;
        for (source, t, time) in [
            (a, "T", 3_000),
            (a, "T", 1_000),
            (a, "P", 2_000),
            (b, "T", 4_000),
        ] {
            store
                .add_data(DataKind::Measurement, &data("acme", source, t, time))
                .await
                .unwrap();
            store
                .add_data(DataKind::Event, &data("acme", source, t, time))
                .await
                .unwrap();
        }
        store
            .add_data(DataKind::Measurement, &data("globex", a, "T", 1_500))
            .await
            .unwrap();
        let times = |kind, filter: DataFilter, p: Page| {
            let store = store.clone();
            async move {
                store
                    .data_list(kind, "acme", &filter, p)
                    .await
                    .unwrap()
                    .iter()
                    .map(|m| m.time_ms)
                    .collect::<Vec<_>>()
            }
        };
        let m = DataKind::Measurement;
        assert_eq!(
            times(m, DataFilter::default(), Page::all()).await,
            vec![1_000, 2_000, 3_000, 4_000],
            "measurements oldest first, another tenant's left out"
        );
        assert_eq!(
            times(DataKind::Event, DataFilter::default(), Page::all()).await,
            vec![4_000, 3_000, 2_000, 1_000],
            "events newest first"
        );
        let by_source = DataFilter {
            source: Some(a),
            data_type: Some("T".into()),
            ..Default::default()
        };
        assert_eq!(times(m, by_source, Page::all()).await, vec![1_000, 3_000]);
        let window = DataFilter {
            from_ms: Some(2_000),
            to_ms: Some(4_000),
            ..Default::default()
        };
        assert_eq!(store.count_data(m, "acme", &window).await.unwrap(), 2);
        assert_eq!(times(m, window, Page::all()).await, vec![2_000, 3_000]);
        let owned = DataFilter {
            source_owner: Some("device_2".into()),
            ..Default::default()
        };
        assert_eq!(times(m, owned, Page::all()).await, vec![4_000]);
        assert_eq!(
            times(m, DataFilter::default(), page(3, 3)).await,
            vec![4_000]
        );
        assert!(times(m, DataFilter::default(), page(4, 3)).await.is_empty());

        let one = store
            .data_list(m, "acme", &DataFilter::default(), page(0, 1))
            .await
            .unwrap();
        let got = store.data(m, "acme", one[0].id).await.unwrap().unwrap();
        assert_eq!(got, one[0]);
        assert!(store.data(m, "globex", one[0].id).await.unwrap().is_none());
        assert!(store
            .data(DataKind::Event, "acme", one[0].id)
            .await
            .unwrap()
            .is_none());
        db.finish(store).await;
    }
}

#[tokio::test]
async fn alarms_are_filtered_by_status_and_severity_and_updated() {
    for db in databases().await {
        let store = db.open().await;
        let a = device(&store, "acme", "device_1", "one").await;
        let alarm = |severity: &str, time_ms| AlarmRecord {
            id: 0,
            tenant: "acme".into(),
            source: a,
            alarm_type: "c8y_Overheat".into(),
            time_ms,
            status: "ACTIVE".into(),
            severity: severity.into(),
            document: doc(json!({"text": "hot"})),
            created_ms: time_ms,
            updated_ms: time_ms,
        };
        let major = store.add_alarm(&alarm("MAJOR", 1_000)).await.unwrap();
        let minor = store.add_alarm(&alarm("MINOR", 2_000)).await.unwrap();
        let cleared = store
            .update_alarm(
                "acme",
                major.id,
                &AlarmChange {
                    status: Some("CLEARED".into()),
                    severity: None,
                    fragments: doc(json!({"note": "fixed"})),
                },
                3_000,
            )
            .await
            .unwrap()
            .unwrap();
        assert_eq!(cleared.status, "CLEARED");
        assert_eq!(cleared.document["text"], "hot");
        assert_eq!(cleared.document["note"], "fixed");
        let list = |filter: AlarmFilter| {
            let store = store.clone();
            async move {
                store
                    .alarms("acme", &filter, Page::all())
                    .await
                    .unwrap()
                    .iter()
                    .map(|a| a.id)
                    .collect::<Vec<_>>()
            }
        };
        assert_eq!(list(AlarmFilter::default()).await, vec![minor.id, major.id]);
        let active = AlarmFilter {
            status: Some("ACTIVE".into()),
            ..Default::default()
        };
        assert_eq!(store.count_alarms("acme", &active).await.unwrap(), 1);
        assert_eq!(list(active).await, vec![minor.id]);
        let majors = AlarmFilter {
            severity: Some("MAJOR".into()),
            ..Default::default()
        };
        assert_eq!(list(majors).await, vec![major.id]);
        assert!(store
            .update_alarm("globex", minor.id, &AlarmChange::default(), 4_000)
            .await
            .unwrap()
            .is_none());
        assert!(store
            .alarms("globex", &AlarmFilter::default(), Page::all())
            .await
            .unwrap()
            .is_empty());
        db.finish(store).await;
    }
}

fn to(status: OperationStatus) -> OperationChange {
    OperationChange {
        status: Some(status),
        ..Default::default()
    }
}

#[tokio::test]
async fn operations_move_through_their_statuses_once() {
    use OperationStatus::*;
    for db in databases().await {
        let store = db.open().await;
        let a = device(&store, "acme", "device_1", "one").await;
        let b = device(&store, "acme", "device_2", "two").await;
        let op = store
            .create_operation("acme", a, &doc(json!({"c8y_Restart": {}})), 1_000)
            .await
            .unwrap();
        assert_eq!(op.status, Pending);
        let other = store
            .create_operation("acme", b, &doc(json!({"c8y_Restart": {}})), 1_000)
            .await
            .unwrap();

        assert_eq!(
            store
                .update_operation("acme", op.id, &to(Successful), 2_000)
                .await
                .unwrap(),
            OperationUpdate::Illegal { current: Pending }
        );
        let OperationUpdate::Updated(executing) = store
            .update_operation("acme", op.id, &to(Executing), 2_000)
            .await
            .unwrap()
        else {
            panic!("PENDING → EXECUTING refused");
        };
        assert_eq!(executing.status, Executing);
        assert_eq!(executing.document["c8y_Restart"], json!({}));
        let failed = OperationChange {
            status: Some(Failed),
            failure_reason: Some("disk full".into()),
            fragments: doc(json!({"c8y_Log": "x"})),
        };
        let OperationUpdate::Updated(done) = store
            .update_operation("acme", op.id, &failed, 3_000)
            .await
            .unwrap()
        else {
            panic!("EXECUTING → FAILED refused");
        };
        assert_eq!(done.failure_reason.as_deref(), Some("disk full"));
        assert_eq!(store.operation("acme", op.id).await.unwrap().unwrap(), done);
        for next in [Pending, Executing, Successful, Failed] {
            assert_eq!(
                store
                    .update_operation("acme", op.id, &to(next), 4_000)
                    .await
                    .unwrap(),
                OperationUpdate::Illegal { current: Failed },
                "FAILED is final"
            );
        }
        // A device may refuse at once.
        assert!(matches!(
            store
                .update_operation("acme", other.id, &to(Failed), 4_000)
                .await
                .unwrap(),
            OperationUpdate::Updated(_)
        ));
        assert_eq!(
            store
                .update_operation("globex", other.id, &to(Executing), 4_000)
                .await
                .unwrap(),
            OperationUpdate::NotFound
        );

        let third = store
            .create_operation(
                "acme",
                a,
                &doc(json!({"c8y_Command": {"text": "ls"}})),
                5_000,
            )
            .await
            .unwrap();
        let list = |filter: OperationFilter| {
            let store = store.clone();
            async move {
                store
                    .operations("acme", &filter, Page::all())
                    .await
                    .unwrap()
                    .iter()
                    .map(|o| o.id)
                    .collect::<Vec<_>>()
            }
        };
        assert_eq!(
            list(OperationFilter::default()).await,
            vec![op.id, other.id, third.id]
        );
        let pending_of_a = OperationFilter {
            device_id: Some(a),
            status: Some(Pending),
            ..Default::default()
        };
        assert_eq!(list(pending_of_a).await, vec![third.id]);
        let owned = OperationFilter {
            device_owner: Some("device_2".into()),
            ..Default::default()
        };
        assert_eq!(store.count_operations("acme", &owned).await.unwrap(), 1);
        assert_eq!(list(owned).await, vec![other.id]);
        assert!(store
            .operations("globex", &OperationFilter::default(), Page::all())
            .await
            .unwrap()
            .is_empty());
        db.finish(store).await;
    }
}

#[tokio::test]
async fn of_concurrent_completions_exactly_one_succeeds() {
    use OperationStatus::*;
    for db in databases().await {
        let store = db.open().await;
        let a = device(&store, "acme", "device_1", "one").await;
        for round in 0..5 {
            let op = store
                .create_operation("acme", a, &doc(json!({"round": round})), 1_000)
                .await
                .unwrap();
            store
                .update_operation("acme", op.id, &to(Executing), 2_000)
                .await
                .unwrap();
            let tasks: Vec<_> = (0..8)
                .map(|i| {
                    let store = store.clone();
                    let status = if i % 2 == 0 { Successful } else { Failed };
                    tokio::spawn(async move {
                        store
                            .update_operation("acme", op.id, &to(status), 3_000)
                            .await
                            .unwrap()
                    })
                })
                .collect();
            let mut updated = 0;
            for task in tasks {
                match task.await.unwrap() {
                    OperationUpdate::Updated(_) => updated += 1,
                    OperationUpdate::Illegal { current } => assert!(current.is_final()),
                    OperationUpdate::NotFound => panic!("operation vanished"),
                }
            }
            assert_eq!(updated, 1, "round {round}: one completion wins");
        }
        db.finish(store).await;
    }
}

#[tokio::test]
async fn new_device_requests_go_from_registration_to_one_accepted_take() {
    for db in databases().await {
        let store = db.open().await;
        let request = |tenant: &str| NewDeviceRequestRecord {
            tenant: tenant.into(),
            serial: "SN-7".into(),
            status: NewDeviceStatus::WaitingForConnection,
            owner: "admin".into(),
            created_ms: 1_000,
            updated_ms: 1_000,
        };
        store
            .add_new_device_request(&request("acme"))
            .await
            .unwrap();
        assert!(matches!(
            store.add_new_device_request(&request("acme")).await,
            Err(StoreError::Exists { .. })
        ));
        store
            .add_new_device_request(&request("globex"))
            .await
            .unwrap();
        let tenants: Vec<_> = store
            .new_device_requests_by_serial("SN-7")
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.tenant)
            .collect();
        assert_eq!(tenants, vec!["acme", "globex"]);
        assert_eq!(store.count_new_device_requests("globex").await.unwrap(), 1);
        assert!(store
            .remove_new_device_request("globex", "SN-7")
            .await
            .unwrap());
        assert!(!store
            .remove_new_device_request("globex", "SN-7")
            .await
            .unwrap());

        assert!(!store
            .take_accepted_new_device_request("acme", "SN-7")
            .await
            .unwrap());
        store
            .mark_new_device_request_seen("acme", "SN-7", 2_000)
            .await
            .unwrap();
        let seen = store
            .new_device_request("acme", "SN-7")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(seen.status, NewDeviceStatus::PendingAcceptance);
        let accepted = store
            .set_new_device_request_status("acme", "SN-7", NewDeviceStatus::Accepted, 3_000)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(accepted.status, NewDeviceStatus::Accepted);
        // Seeing it again does not undo the acceptance.
        store
            .mark_new_device_request_seen("acme", "SN-7", 4_000)
            .await
            .unwrap();
        assert_eq!(
            store
                .new_device_requests("acme", Page::all())
                .await
                .unwrap()[0]
                .status,
            NewDeviceStatus::Accepted
        );
        assert!(store
            .take_accepted_new_device_request("acme", "SN-7")
            .await
            .unwrap());
        assert!(!store
            .take_accepted_new_device_request("acme", "SN-7")
            .await
            .unwrap());
        assert!(store
            .new_device_request("acme", "SN-7")
            .await
            .unwrap()
            .is_none());
        assert!(store
            .set_new_device_request_status("acme", "SN-7", NewDeviceStatus::Accepted, 5_000)
            .await
            .unwrap()
            .is_none());
        db.finish(store).await;
    }
}
