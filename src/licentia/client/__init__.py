"""The SDK applications use to ask a Licentia server (or relationship) for licenses."""

from licentia.client.admin import AdminSession
from licentia.client.async_client import AsyncLicenseClient
from licentia.client.errors import LicenseDenied, ServerUnavailable
from licentia.client.license_client import LicenseClient

__all__ = ["AdminSession", "AsyncLicenseClient", "LicenseClient", "LicenseDenied", "ServerUnavailable"]
