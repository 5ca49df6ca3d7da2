//! The pod-resources client against stub kubelets on unix sockets in a
//! tempdir (tonic's server, the real protobuf encoding), and the fallback
//! order of [`pod_devices`].
use std::{
    collections::BTreeMap,
    convert::Infallible,
    path::{Path, PathBuf},
    time::Duration,
};

use prost::Message as _;
use tonic::{
    Status,
    body::Body,
    codegen::{http, tokio_stream::wrappers::UnixListenerStream},
    transport::Server,
};
use tonic_prost::ProstCodec;

use super::{
    proto::{
        ContainerDevices, ContainerResources, LIST_PATH, ListPodResourcesRequest,
        ListPodResourcesResponse, NumaNode, PodResources, TopologyInfo,
    },
    *,
};
use crate::owner::PodSource;

const TIMEOUT: Duration = Duration::from_secs(5);

/// How a stub kubelet answers.
#[derive(Clone)]
enum Stub {
    /// `List` returns this; any other path is Unimplemented.
    List(ListPodResourcesResponse),
    /// Every call: Unimplemented (a kubelet without the v1 API).
    Unimplemented,
    /// Takes the call and never answers.
    Hang,
}

/// Serves `stub` on `dir/kubelet.sock` on the test's runtime.
fn serve(dir: &Path, stub: Stub) -> PathBuf {
    let path = dir.join("kubelet.sock");
    let listener = tokio::net::UnixListener::bind(&path).expect("bind stub socket");
    let svc = tower::service_fn(move |req: http::Request<Body>| {
        let stub = stub.clone();
        async move { Ok::<_, Infallible>(answer(stub, req).await) }
    });
    let server = Server::builder().serve_with_incoming(svc, UnixListenerStream::new(listener));
    tokio::spawn(server);
    path
}

async fn answer(stub: Stub, req: http::Request<Body>) -> http::Response<Body> {
    match stub {
        Stub::List(response) if req.uri().path() == LIST_PATH => {
            let method = tower::service_fn(move |_: tonic::Request<ListPodResourcesRequest>| {
                let response = response.clone();
                async move { Ok::<_, Status>(tonic::Response::new(response)) }
            });
            let codec = ProstCodec::<ListPodResourcesResponse, ListPodResourcesRequest>::default();
            tonic::server::Grpc::new(codec).unary(method, req).await
        }
        Stub::List(_) | Stub::Unimplemented => {
            Status::unimplemented("unknown service v1.PodResourcesLister").into_http()
        }
        Stub::Hang => std::future::pending().await,
    }
}

fn devices(resource: &str, ids: &[&str], numa: i64) -> ContainerDevices {
    ContainerDevices {
        resource_name: resource.into(),
        device_ids: ids.iter().map(|s| s.to_string()).collect(),
        topology: Some(TopologyInfo {
            nodes: vec![NumaNode { id: numa }],
        }),
    }
}

/// Two pods: one with two SR-IOV VFs in one container (one id in the
/// short form), one with a non-PCI device and exclusive CPUs.
fn two_pods() -> ListPodResourcesResponse {
    ListPodResourcesResponse {
        pod_resources: vec![
            PodResources {
                name: "vnf-0".into(),
                namespace: "telco".into(),
                containers: vec![ContainerResources {
                    name: "dpdk".into(),
                    devices: vec![devices(
                        "intel.com/sriov_vfio",
                        &["0000:01:10.0", "01:10.2"],
                        0,
                    )],
                    ..Default::default()
                }],
            },
            PodResources {
                name: "trainer".into(),
                namespace: "ml".into(),
                containers: vec![
                    ContainerResources {
                        name: "sidecar".into(),
                        ..Default::default()
                    },
                    ContainerResources {
                        name: "cuda".into(),
                        devices: vec![devices("nvidia.com/gpu", &["GPU-8f2c-11"], 1)],
                        cpu_ids: vec![4, 5, 6, 7],
                        ..Default::default()
                    },
                ],
            },
        ],
    }
}

fn pod(ns: &str, name: &str, container: &str, resource: &str, source: PodSource) -> Pod {
    Pod {
        namespace: ns.into(),
        name: name.into(),
        container: container.into(),
        resource: resource.into(),
        source,
    }
}

fn two_pods_map() -> BTreeMap<String, Pod> {
    let vf = pod(
        "telco",
        "vnf-0",
        "dpdk",
        "intel.com/sriov_vfio",
        PodSource::PodResources,
    );
    BTreeMap::from([
        ("0000:01:10.0".to_string(), vf.clone()),
        ("0000:01:10.2".to_string(), vf),
        (
            "GPU-8f2c-11".to_string(),
            pod(
                "ml",
                "trainer",
                "cuda",
                "nvidia.com/gpu",
                PodSource::PodResources,
            ),
        ),
    ])
}

#[tokio::test(flavor = "current_thread")]
async fn lists_the_pods_of_a_stub_kubelet() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let socket = serve(tmp.path(), Stub::List(two_pods()));
    let got = list_pod_devices(&socket, TIMEOUT).await.expect("List");
    assert_eq!(got, two_pods_map());
}

#[tokio::test(flavor = "current_thread")]
async fn missing_socket_is_not_found() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let socket = tmp.path().join("kubelet.sock");
    let err = list_pod_devices(&socket, TIMEOUT)
        .await
        .expect_err("missing");
    assert!(err.is_not_found(), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!(
            "kubelet pod-resources socket {}: not found",
            socket.display()
        )
    );
}

#[tokio::test(flavor = "current_thread")]
async fn socket_nobody_listens_on_is_a_connect_error() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let socket = tmp.path().join("kubelet.sock");
    drop(std::os::unix::net::UnixListener::bind(&socket).expect("bind"));
    let err = list_pod_devices(&socket, TIMEOUT)
        .await
        .expect_err("refused");
    assert!(matches!(err, KubeletError::Connect { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.starts_with(&format!(
            "kubelet pod-resources socket {}: cannot connect: ",
            socket.display()
        )),
        "{msg}"
    );
}

#[tokio::test(flavor = "current_thread")]
async fn unimplemented_is_an_rpc_error_with_its_code() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let socket = serve(tmp.path(), Stub::Unimplemented);
    let err = list_pod_devices(&socket, TIMEOUT).await.expect_err("rpc");
    match &err {
        KubeletError::Rpc {
            path,
            code,
            message,
        } => {
            assert_eq!(path, &socket);
            assert_eq!(*code, tonic::Code::Unimplemented);
            assert_eq!(message, "unknown service v1.PodResourcesLister");
        }
        other => panic!("want Rpc, got {other:?}"),
    }
    assert!(err.to_string().contains(": List failed: Unimplemented: "));
}

#[tokio::test(flavor = "current_thread")]
async fn a_kubelet_that_never_answers_times_out() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let socket = serve(tmp.path(), Stub::Hang);
    let timeout = Duration::from_millis(300);
    let err = list_pod_devices(&socket, timeout).await.expect_err("hang");
    assert!(
        matches!(&err, KubeletError::Timeout { path, timeout: t } if path == &socket && *t == timeout),
        "{err:?}"
    );
    assert!(err.to_string().ends_with(": no answer within 300 ms"));
}

#[tokio::test(flavor = "current_thread")]
async fn a_socket_that_accepts_but_never_speaks_times_out() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let socket = tmp.path().join("kubelet.sock");
    // the kernel completes the connection (backlog); nobody reads it
    let _listener = std::os::unix::net::UnixListener::bind(&socket).expect("bind");
    let err = list_pod_devices(&socket, Duration::from_millis(300))
        .await
        .expect_err("silent");
    assert!(matches!(err, KubeletError::Timeout { .. }), "{err:?}");
}

/// The hand-written messages against protobuf bytes built by hand from the
/// upstream field numbers (what a Go kubelet sends), not by prost.
#[test]
fn decodes_upstream_wire_bytes() {
    fn field(tag: u32, bytes: &[u8]) -> Vec<u8> {
        let mut out = vec![((tag << 3) | 2) as u8, bytes.len() as u8];
        out.extend_from_slice(bytes);
        out
    }
    let numa_node = [1 << 3, 1]; // NUMANode{ID: 1}: field 1, varint
    let topology = field(3, &field(1, &numa_node)); // TopologyInfo{nodes: [..]}
    let devices = [
        field(1, b"intel.com/sriov"),
        field(2, b"0000:01:10.0"),
        topology,
    ]
    .concat();
    let container = [
        field(1, b"c0"),
        field(2, &devices),
        field(3, &[2, 3]), // packed cpu_ids
    ]
    .concat();
    let pod = [field(1, b"p"), field(2, b"ns"), field(3, &container)].concat();
    let bytes = field(1, &pod);
    let decoded = ListPodResourcesResponse::decode(&bytes[..]).expect("decode");
    let c = &decoded.pod_resources[0].containers[0];
    assert_eq!(decoded.pod_resources[0].name, "p");
    assert_eq!(decoded.pod_resources[0].namespace, "ns");
    assert_eq!(c.name, "c0");
    assert_eq!(c.cpu_ids, vec![2, 3]);
    assert_eq!(c.devices[0].resource_name, "intel.com/sriov");
    assert_eq!(c.devices[0].device_ids, vec!["0000:01:10.0"]);
    assert_eq!(
        c.devices[0].topology,
        Some(TopologyInfo {
            nodes: vec![NumaNode { id: 1 }]
        })
    );
}

fn write_checkpoint(dir: &Path) -> PathBuf {
    let path = dir.join("kubelet_internal_checkpoint");
    let text = r#"{"Data":{"PodDeviceEntries":[{"PodUID":"u-1","ContainerName":"app",
"ResourceName":"intel.com/sriov","DeviceIDs":{"0":["0000:01:10.5"]},"AllocResp":null}],
"RegisteredDevices":{"intel.com/sriov":["0000:01:10.5"]}},"Checksum":1}"#;
    std::fs::write(&path, text).expect("write checkpoint");
    std::fs::create_dir_all(dir.join("pods/web_nginx-1_u-1")).expect("mkdir");
    path
}

#[tokio::test(flavor = "current_thread")]
async fn pod_devices_prefers_the_api() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let socket = serve(tmp.path(), Stub::List(two_pods()));
    let cp = write_checkpoint(tmp.path());
    let PodLookup {
        pods: got,
        warning,
        no_kubelet,
    } = pod_devices(&socket, &cp, &tmp.path().join("pods"), TIMEOUT).await;
    assert_eq!(got, two_pods_map());
    assert_eq!(warning, None);
    assert!(!no_kubelet);
}

#[tokio::test(flavor = "current_thread")]
async fn pod_devices_falls_back_to_the_checkpoint() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let cp = write_checkpoint(tmp.path());
    let logs = tmp.path().join("pods");
    let want = BTreeMap::from([(
        "0000:01:10.5".to_string(),
        pod(
            "web",
            "nginx-1",
            "app",
            "intel.com/sriov",
            PodSource::Checkpoint,
        ),
    )]);

    let missing = tmp.path().join("kubelet.sock");
    let PodLookup {
        pods: got,
        warning,
        no_kubelet,
    } = pod_devices(&missing, &cp, &logs, TIMEOUT).await;
    assert_eq!(got, want);
    assert!(!no_kubelet);
    assert_eq!(
        warning.as_deref(),
        Some(
            format!(
                "kubelet pod-resources socket {}: not found; using the device plugin checkpoint {}",
                missing.display(),
                cp.display()
            )
            .as_str()
        )
    );

    let sub = tmp.path().join("old");
    std::fs::create_dir(&sub).expect("mkdir");
    let socket = serve(&sub, Stub::Unimplemented);
    let PodLookup {
        pods: got, warning, ..
    } = pod_devices(&socket, &cp, &logs, TIMEOUT).await;
    assert_eq!(got, want);
    let warning = warning.expect("warning");
    assert!(warning.contains("List failed: Unimplemented"), "{warning}");
    let tail = format!("; using the device plugin checkpoint {}", cp.display());
    assert!(warning.ends_with(&tail), "{warning}");
}

#[tokio::test(flavor = "current_thread")]
async fn pod_devices_without_a_kubelet() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let socket = tmp.path().join("kubelet.sock");
    let cp = tmp.path().join("kubelet_internal_checkpoint");
    let PodLookup {
        pods: got,
        warning,
        no_kubelet,
    } = pod_devices(&socket, &cp, tmp.path(), TIMEOUT).await;
    assert!(got.is_empty(), "{got:?}");
    assert!(no_kubelet);
    assert_eq!(
        warning,
        Some(format!(
            "kubelet pod-resources socket {}: not found; device plugin checkpoint {}: not found (no kubelet on this host?)",
            socket.display(),
            cp.display()
        ))
    );

    // a corrupt checkpoint: both failures in the warning, nothing returned
    std::fs::write(&cp, "{").expect("write");
    let PodLookup {
        pods: got,
        warning,
        no_kubelet,
    } = pod_devices(&socket, &cp, tmp.path(), TIMEOUT).await;
    assert!(got.is_empty(), "{got:?}");
    assert!(!no_kubelet);
    let warning = warning.expect("warning");
    assert!(
        warning.contains(": not found; device plugin checkpoint "),
        "{warning}"
    );
    assert!(
        warning.contains("not a kubelet device manager checkpoint"),
        "{warning}"
    );
}
