"""Stand-ins that make the AWS side refuse what AWS would refuse, on 127.0.0.1 in front of moto.

moto stores what the code under test writes but judges none of it: it serves every object to anyone,
hands out credentials for any token and any role, and accepts a public bucket policy under Block
Public Access. These put AWS's judgement back, each written from AWS's documentation and sharing no
code with what it judges:

- :class:`~.public_s3.PublicS3`: the anonymous HTTPS view of S3 (bucket policy, Block Public Access);
- :class:`~.verifying_sts.VerifyingSTS`: AssumeRoleWithWebIdentity with every check STS makes
  (the issuer's keys fetched and cached by :mod:`.oidcfetch`, claims read by :mod:`.claims`);
- :class:`~.recorder.CallRecorder`: the AWS endpoint for the code under test; names every call it
  makes (as IAM actions) and refuses the S3 writes AWS refuses (:mod:`.s3rules`);
- :mod:`.policy`: IAM policy evaluation; :mod:`.actions`: request → operation → IAM actions;
- :class:`~.issuer.ManualIssuer`: an issuer published by hand with boto3, and tokens for it;
- :class:`~.motoserver.MotoServer`: moto's server itself (any moto URL will do for the others);
- :mod:`.httpd` (a threaded HTTP(S) server on 127.0.0.1, relaying), :mod:`.awsxml` (AWS's error bodies).

Typical wiring (see tests/standins/conftest.py)::

    moto = MotoServer(workdir)
    front = PublicS3(moto.url, workdir)                     # issuer URLs: front.issuer_url(bucket, prefix)
    recorder = CallRecorder(moto.url)                       # AWS_ENDPOINT_URL for the code under test
    sts = VerifyingSTS(moto.url, ca_file=front.ca_file, upstream=recorder.url)  # AWS_ENDPOINT_URL_STS
"""

from ..moto import MotoServer
from .issuer import ManualIssuer, SigningKey
from .motoserver import admin_client
from .public_s3 import PublicS3
from .recorder import CallRecorder
from .verifying_sts import VerifyingSTS

__all__ = ["CallRecorder", "ManualIssuer", "MotoServer", "PublicS3", "SigningKey", "VerifyingSTS", "admin_client"]
