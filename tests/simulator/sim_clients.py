"""Official-client constructors pointed at a simulator URL (tests only; the product uses sovaudit.cloud)."""

from __future__ import annotations

from typing import Any

from google.auth.credentials import AnonymousCredentials


def options(url: str) -> dict[str, str]:
    return {"api_endpoint": url}


def orgpolicy(url: str) -> Any:
    from google.cloud import orgpolicy_v2

    return orgpolicy_v2.OrgPolicyClient(transport="rest", client_options=options(url),
                                        credentials=AnonymousCredentials())


def projects(url: str) -> Any:
    from google.cloud import resourcemanager_v3

    return resourcemanager_v3.ProjectsClient(transport="rest", client_options=options(url),
                                             credentials=AnonymousCredentials())


def kms(url: str) -> Any:
    from google.cloud import kms as kms_module

    return kms_module.KeyManagementServiceClient(transport="rest", client_options=options(url),
                                                 credentials=AnonymousCredentials())


def logging(url: str, project: str = "fed-node-us") -> Any:
    from google.cloud import logging as logging_module

    return logging_module.Client(project=project, _use_grpc=False, client_options=options(url),
                                 credentials=AnonymousCredentials())


def acm(url: str) -> Any:
    from googleapiclient.discovery import build

    return build("accesscontextmanager", "v1", static_discovery=True, client_options=options(url),
                 credentials=AnonymousCredentials())


def session() -> Any:
    from google.auth.transport.requests import AuthorizedSession

    return AuthorizedSession(AnonymousCredentials())
