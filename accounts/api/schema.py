"""The OpenAPI schema's view of an operation: every one documents its error answers, in one shape.

401 and 403 everywhere (a token or a session is always needed, and any of them may be refused), 404
where a path names a thing, 400 on every operation (a bad filter, a bad body) and 409 on writes (a
change the present state refuses). Tags follow the first path segment after /api/.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.openapi import AutoSchema

from accounts.api.errors import ErrorSerializer

ERRORS = {
    "400": "The request or one of its fields is invalid (see fields).",
    "401": "No credentials, or a token that is unknown, revoked, expired or of a deactivated user.",
    "403": "Signed in, but this is not allowed for this person or token.",
    "404": "Nothing of that name, or nothing this person may see.",
    "409": "Refused by the present state (your own account or token, a run already under way, ...).",
}


class Schema(AutoSchema):
    def _get_response_bodies(self, direction: str = "response") -> dict[str, Any]:
        responses = super()._get_response_bodies(direction)
        codes = ["400", "401", "403"]
        if "{" in self.path:
            codes.append("404")
        if self.method not in ("GET", "HEAD", "OPTIONS"):
            codes.append("409")
        for code in codes:
            if code not in responses:
                response = self._get_response_for_code(ErrorSerializer, code, direction=direction)
                response["description"] = ERRORS[code]
                responses[code] = response
        return responses

    def get_tags(self) -> list[str]:
        parts = [part for part in self.path.split("/") if part and not part.startswith("{")]
        return parts[1:2] or ["api"]


class AccessTokenScheme(OpenApiAuthenticationExtension):
    target_class = "accounts.api.authentication.AccessTokenAuthentication"
    name = "accessToken"

    def get_security_definition(self, auto_schema: Any) -> dict[str, Any]:
        return {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "rga_...",
            "description": "A personal access token (Tokens page, or POST /api/tokens/).",
        }


class SessionScheme(OpenApiAuthenticationExtension):
    target_class = "accounts.api.authentication.SessionAuthentication"
    name = "session"

    def get_security_definition(self, auto_schema: Any) -> dict[str, Any]:
        return {"type": "apiKey", "in": "cookie", "name": "sessionid", "description": "The dashboard's session."}
