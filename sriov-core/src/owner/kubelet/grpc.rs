//! The pod-resources API client: one `List` call over the kubelet's unix
//! socket, with a hand-written tonic client (no generated code).
use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    time::Duration,
};

use hyper_util::rt::TokioIo;
use tokio::net::UnixStream;
use tonic::{
    codegen::http::uri::PathAndQuery,
    transport::{Channel, Endpoint, Uri},
};
use tonic_prost::ProstCodec;

use super::{
    KubeletError, WHAT_SOCKET, insert_devices,
    proto::{LIST_PATH, ListPodResourcesRequest, ListPodResourcesResponse},
};
use crate::owner::{Pod, PodSource};

/// The largest `List` answer taken (tonic's default is 4 MiB; a node with
/// many pods can come near that).
const MAX_MESSAGE: usize = 64 << 20;

/// The pod of every device id the kubelet's pod-resources API on `socket`
/// lists, keyed by device id (PCI addresses normalised to `dddd:bb:dd.f`).
/// `timeout` bounds the whole call, connection included.
///
/// Errors: [`KubeletError::NotFound`] when the socket does not exist,
/// [`KubeletError::Permission`], [`KubeletError::Connect`],
/// [`KubeletError::Rpc`] with the gRPC status, [`KubeletError::Timeout`].
pub async fn list_pod_devices(
    socket: &Path,
    timeout: Duration,
) -> Result<BTreeMap<String, Pod>, KubeletError> {
    match tokio::time::timeout(timeout, list(socket)).await {
        Ok(result) => result,
        Err(_elapsed) => Err(KubeletError::Timeout {
            path: socket.to_path_buf(),
            timeout,
        }),
    }
}

async fn list(socket: &Path) -> Result<BTreeMap<String, Pod>, KubeletError> {
    let channel = connect(socket).await?;
    let mut grpc = tonic::client::Grpc::new(channel).max_decoding_message_size(MAX_MESSAGE);
    grpc.ready().await.map_err(|e| KubeletError::Connect {
        path: socket.to_path_buf(),
        source: Box::new(e),
    })?;
    let codec = ProstCodec::<ListPodResourcesRequest, ListPodResourcesResponse>::default();
    let response = grpc
        .unary(
            tonic::Request::new(ListPodResourcesRequest {}),
            PathAndQuery::from_static(LIST_PATH),
            codec,
        )
        .await
        .map_err(|status| KubeletError::Rpc {
            path: socket.to_path_buf(),
            code: status.code(),
            message: status.message().to_string(),
        })?;
    Ok(pods_by_device(response.into_inner()))
}

/// A channel over the unix socket. The first connection is made here, so
/// that its errno becomes NotFound/Permission/Connect; the channel gets it
/// through a one-shot connector (which opens a new one should the channel
/// ever reconnect).
async fn connect(socket: &Path) -> Result<Channel, KubeletError> {
    let first = UnixStream::connect(socket).await.map_err(|e| {
        KubeletError::from_io(WHAT_SOCKET, socket, e, |path, source| {
            KubeletError::Connect {
                path,
                source: Box::new(source),
            }
        })
    })?;
    let first = Arc::new(Mutex::new(Some(first)));
    let path: PathBuf = socket.to_path_buf();
    let connector = tower::service_fn(move |_: Uri| {
        let taken = first.lock().ok().and_then(|mut slot| slot.take());
        let path = path.clone();
        async move {
            let stream = match taken {
                Some(stream) => stream,
                None => UnixStream::connect(&path).await?,
            };
            Ok::<_, std::io::Error>(TokioIo::new(stream))
        }
    });
    // The URI only fills in :authority; the kubelet does not look at it.
    Endpoint::from_static("http://localhost")
        .connect_with_connector(connector)
        .await
        .map_err(|e| KubeletError::Connect {
            path: socket.to_path_buf(),
            source: Box::new(e),
        })
}

/// Every device id of every container, with its pod.
fn pods_by_device(response: ListPodResourcesResponse) -> BTreeMap<String, Pod> {
    let mut map = BTreeMap::new();
    for pod in &response.pod_resources {
        for container in &pod.containers {
            for devices in &container.devices {
                let owner = Pod {
                    namespace: pod.namespace.clone(),
                    name: pod.name.clone(),
                    container: container.name.clone(),
                    resource: devices.resource_name.clone(),
                    source: PodSource::PodResources,
                };
                insert_devices(&mut map, &devices.device_ids, &owner);
            }
        }
    }
    map
}
