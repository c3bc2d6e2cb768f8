//! The local control plane: a real kube-apiserver, etcd, controller-manager, scheduler and KWOK nodes.

pub mod cli;
