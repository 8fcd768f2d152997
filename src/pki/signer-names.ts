// The signerName of every signer trustplane knows, in one place: the CA's profiles, the CSR API, the controllers and the agent name them from here.

/** Kubernetes' signer of kubelet client certificates (CN system:node:<name>, O system:nodes). */
export const SIGNER_KUBELET_CLIENT = 'kubernetes.io/kube-apiserver-client-kubelet';
/** Kubernetes' signer of kubelet serving certificates (the node endpoint the API server reaches through the tunnel). */
export const SIGNER_KUBELET_SERVING = 'kubernetes.io/kubelet-serving';
/** Kubernetes' signer of API client certificates for users. */
export const SIGNER_APISERVER_CLIENT = 'kubernetes.io/kube-apiserver-client';
/** The cluster API server's (and tunnel server's) serving certificate: fleet callers only. */
export const SIGNER_APISERVER_SERVING = 'trustplane.io/kube-apiserver-serving';
/** Client identities of control-plane components (CN system:trustplane:<component>). */
export const SIGNER_CONTROL_PLANE_COMPONENT = 'trustplane.io/control-plane-component';
/** etcd client-port serving certificates. */
export const SIGNER_ETCD_SERVER = 'trustplane.io/etcd-server';
/** etcd client certificates (API server → state store, etcdctl). */
export const SIGNER_ETCD_CLIENT = 'trustplane.io/etcd-client';
/** etcd member-to-member certificates. */
export const SIGNER_ETCD_PEER = 'trustplane.io/etcd-peer';

/** The name the CA service's audit log gives its own credentials (callers and its TLS servers), by role. */
export const serviceSignerName = (role: 'fleet' | 'cluster' | 'server') => `trustplane.io/service-${role}`;
