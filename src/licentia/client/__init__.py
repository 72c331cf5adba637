"""The SDK applications use to ask a Licentia server for licenses."""

from licentia.client.admin import AdminSession
from licentia.client.license_client import LicenseClient, LicenseDenied, ServerUnavailable

__all__ = ["AdminSession", "LicenseClient", "LicenseDenied", "ServerUnavailable"]
