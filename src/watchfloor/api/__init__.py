"""Admin/operator REST API (`/api/v1`): FastAPI routers, DTO -> repository -> response, errors as problems.

Mount with `app.include_router(build_api_router(db, archive_root=..., admin_token_sha256=...))`.
"""

from watchfloor.api.auth import ACTOR_HEADER, ADMIN_TOKEN_SETTING, hash_admin_token, new_admin_token
from watchfloor.api.context import MAX_PAGE, ReplayCallable
from watchfloor.api.problems import PROBLEM_MEDIA_TYPE, ApiProblem, Problem
from watchfloor.api.router import API_PREFIX, build_api_router, create_api_app

__all__ = [
    "ACTOR_HEADER",
    "ADMIN_TOKEN_SETTING",
    "API_PREFIX",
    "MAX_PAGE",
    "PROBLEM_MEDIA_TYPE",
    "ApiProblem",
    "Problem",
    "ReplayCallable",
    "build_api_router",
    "create_api_app",
    "hash_admin_token",
    "new_admin_token",
]
