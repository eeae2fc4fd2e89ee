"""What the tests share, each piece once. Test modules import from here (and get fixtures from their
folder's conftest); they never import one another.

- ``paths``: the repository, the sample AdmissionReviews, the examples and the YAML cases;
- ``cases``: loading a case or a sample, and the invariants every mutation is checked against;
- ``ports``: a free port; ``waits``: one bounded poll for everything a test waits for;
- ``procs``: child processes with their output in a file, stopped by PID, and the report hook that
  attaches their log tails to a failed test;
- ``certs``: serving certificates (in-process or through ``irsa-webhook certs``), rotations as real
  writers do them, and TLS probes telling which pair is served; ``volumes``: a kubelet-style
  ``..data`` volume;
- ``server``: ``irsa-webhook serve`` as a real process, the one way every test starts it;
- ``asgi``: the composed ASGI app in-process, and a request to it without sockets;
- ``metrics``: a sample of the default registry, or of a scraped text;
- ``kubeapi``: the fake Kubernetes API: one object model, and two stand-ins at two levels (an HTTP
  server for code that goes through a kubeconfig, a scripted CoreV1Api for the watch loops);
- ``controlplane`` and ``kuberest``: a real etcd + kube-apiserver, and a raw-JSON client of it;
- ``provisioning``: AWS state as YAML for the provisioner's planner cases, an in-memory AWS that
  applies a plan's changes (and refuses what must never be done), kube-apiserver's test keys.
- ``moto``: moto's server on 127.0.0.1 (with the IAM client-ID actions it lacks, ``motoserver``), its
  reset, and the environment that points boto3's standard chain at it; ``awserrors``: an endpoint
  answering one real AWS error response; ``awsstate``: an issuer spec and plain boto3 clients that set
  up or read back AWS state for the provisioner's tests;
- ``standins``: what makes the AWS side refuse what AWS would refuse: a public S3 front over HTTPS that
  serves only what the bucket policy and public access block let an anonymous caller read, an STS that
  verifies web identity tokens (signature against the published JWKS, trust policy evaluated) before
  moto answers, and a recorder of the IAM actions a run needed;
- ``crds``: the shipped IRSAIssuer CRD on a control plane for a ``with`` block, applied and removed one way;
- ``webservers``: a static HTTPS document server and an HTTP CONNECT proxy.
"""
