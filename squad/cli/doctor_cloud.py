"""`squad doctor`'s checks for Claude on Amazon Bedrock and Google Vertex AI: credentials, region, project.

They run only when a `bedrock:` / `vertex:` model is configured, offline, and the providers' standard way: boto3's
credential chain without its two network providers (an instance or container role is named, not fetched), and
google-auth's application default credentials when a credential file is there (without one only the metadata
server of a Google Cloud VM could supply them, which doctor does not ask). Each check says where the credentials
come from; none prints a credential.
"""

from __future__ import annotations

import importlib.util
import os

from squad.cli.doctor_env import Check

#: botocore's names for where its credential chain found credentials.
_AWS_SOURCES = {
    "env": "the environment (AWS_ACCESS_KEY_ID)",
    "shared-credentials-file": "the shared credentials file",
    "config-file": "the AWS config file",
    "assume-role": "an assumed role of the profile",
    "assume-role-with-web-identity": "a web identity token (AWS_WEB_IDENTITY_TOKEN_FILE)",
    "sso": "AWS IAM Identity Center (`aws sso login`)",
    "login": "`aws login`",
    "custom-process": "the profile's credential_process",
}
_AWS_FIX = (
    "configure AWS credentials: `aws configure` or `aws sso login` (and AWS_PROFILE), AWS_ACCESS_KEY_ID + "
    "AWS_SECRET_ACCESS_KEY, or a Bedrock API key in AWS_BEARER_TOKEN_BEDROCK"
)
#: google-auth's credential modules, by what a person calls them.
_GOOGLE_KINDS = {
    "google.oauth2.credentials": "user credentials",
    "google.oauth2.service_account": "service account",
    "google.auth.impersonated_credentials": "impersonated service account",
    "google.auth.identity_pool": "workload identity federation",
    "google.auth.aws": "workload identity federation (AWS)",
    "google.auth.pluggable": "workload identity federation (executable)",
    "google.auth.external_account_authorized_user": "workforce identity federation",
    "google.auth.compute_engine.credentials": "the VM's service account",
}
_GOOGLE_FIX = "run `gcloud auth application-default login`, or set GOOGLE_APPLICATION_CREDENTIALS to a key file"


def cloud_checks(models: list[str]) -> list[Check]:
    """The Bedrock and Vertex checks for the providers `models` use (none when they use neither)."""
    checks = []
    if any(m.startswith("bedrock:") for m in models):
        checks.append(check_bedrock())
    if any(m.startswith("vertex:") for m in models):
        checks.append(check_vertex())
    return checks


def _missing(*modules: str) -> list[str]:
    return [m for m in modules if importlib.util.find_spec(m) is None]


def check_bedrock() -> Check:
    """Region and credentials as AsyncAnthropicBedrock will find them."""
    name = "bedrock"
    missing = _missing("boto3", "botocore")
    if missing:
        return Check(name, "error", f"bedrock: models need {', '.join(missing)}", "pip install 'squad-agents[bedrock]'")
    import botocore.session
    from botocore.exceptions import BotoCoreError

    try:
        session = botocore.session.Session()  # AWS_PROFILE, AWS_CONFIG_FILE, AWS_SHARED_CREDENTIALS_FILE
        profile = session.get_config_variable("profile") or "default"
        region = (
            os.environ.get("AWS_REGION")
            or os.environ.get("AWS_DEFAULT_REGION")
            or session.get_config_variable("region")
        )
        if os.environ.get("AWS_BEARER_TOKEN_BEDROCK"):
            source = "a Bedrock API key (AWS_BEARER_TOKEN_BEDROCK)"
        else:
            chain = session.get_component("credential_provider")
            for network_provider in ("container-role", "iam-role"):
                chain.remove(network_provider)
            credentials = chain.load_credentials()
            if credentials is None:
                return _bedrock_without_local_credentials(region, profile)
            source = f"{_AWS_SOURCES.get(credentials.method, credentials.method)}, profile {profile}"
    except BotoCoreError as exc:  # a named profile that does not exist, a broken config file
        return Check(name, "error", f"the AWS configuration cannot be read: {exc}", _AWS_FIX)
    if not region:
        return Check(
            name,
            "error",
            f"no AWS region (AWS_REGION, AWS_DEFAULT_REGION, or a region in profile {profile})",
            "export AWS_REGION=us-east-1 (a region where the model or its inference profile is enabled)",
        )
    return Check(name, "ok", f"AWS credentials from {source}; region {region}")


def _bedrock_without_local_credentials(region: str | None, profile: str) -> Check:
    if os.environ.get("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI") or os.environ.get("AWS_CONTAINER_CREDENTIALS_FULL_URI"):
        return Check(
            "bedrock", "ok", f"AWS credentials from the container's role (not fetched offline); region {region}"
        )
    return Check(
        "bedrock",
        "warn",
        f"no AWS credentials in the environment or the AWS files (profile {profile}); only an EC2 instance role "
        "could supply them here (not probed: doctor works offline)",
        _AWS_FIX,
    )


def check_vertex() -> Check:
    """Region, application default credentials and project as AsyncAnthropicVertex will find them."""
    name = "vertex"
    missing = _missing("google.auth", "requests")
    if missing:
        return Check(name, "error", f"vertex: models need {', '.join(missing)}", "pip install 'squad-agents[vertex]'")
    import google.auth
    from google.auth import _cloud_sdk
    from google.auth.exceptions import GoogleAuthError

    region = os.environ.get("CLOUD_ML_REGION", "").strip()
    if not region:
        return Check(name, "error", "CLOUD_ML_REGION is not set", "export CLOUD_ML_REGION=global (or e.g. us-east5)")
    explicit = os.environ.get("GOOGLE_APPLICATION_CREDENTIALS", "")
    gcloud_file = _cloud_sdk.get_application_default_credentials_path()
    if explicit:
        source = f"GOOGLE_APPLICATION_CREDENTIALS ({explicit})"
    elif os.path.isfile(gcloud_file):
        source = f"`gcloud auth application-default login` ({gcloud_file})"
    else:
        return Check(
            name,
            "warn",
            "no application default credentials file; only the metadata server of a Google Cloud VM could supply "
            "them here (not probed: doctor works offline)",
            _GOOGLE_FIX,
        )
    try:
        # Without scopes nothing is refreshed or looked up over the network: the file is only read.
        credentials, found_project = google.auth.default()
    except GoogleAuthError as exc:
        return Check(name, "error", f"the application default credentials cannot be used: {exc}", _GOOGLE_FIX)
    kind = _GOOGLE_KINDS.get(type(credentials).__module__, type(credentials).__name__)
    email = getattr(credentials, "service_account_email", None)
    if email:
        kind = f"{kind} {email}"
    project = os.environ.get("ANTHROPIC_VERTEX_PROJECT_ID", "").strip()
    where = "ANTHROPIC_VERTEX_PROJECT_ID"
    if not project and found_project:
        project, where = found_project, "the credentials"
    if not project:
        return Check(
            name,
            "error",
            f"no Google Cloud project: the credentials from {source} name none",
            "export ANTHROPIC_VERTEX_PROJECT_ID=<project id>",
        )
    return Check(name, "ok", f"Google credentials ({kind}) from {source}; project {project} ({where}); region {region}")
