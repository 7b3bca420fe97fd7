from django.utils.decorators import sync_and_async_middleware

from paw_site.middleware import around

from .errors import error_response

API_PREFIX = "/api/v1/"


@sync_and_async_middleware
def api_errors(get_response):
    """Under /api/v1/: give responses that never went through Ninja's handlers
    (unknown route, wrong method, a crash before the view) the API's error
    shape, and add the rate-limit headers of the bucket the request was counted in."""

    def after(request, response):
        if not request.path.startswith(API_PREFIX):
            return response
        is_json = response.get("Content-Type", "").startswith("application/json")
        if response.status_code >= 400 and not is_json:
            replacement = error_response(request, response.status_code)
            for header in ("Allow", "Retry-After", "Content-Range", "ETag"):
                if header in response:
                    replacement[header] = response[header]
            response = replacement
        caller = getattr(request, "rate_limit_caller", None)
        usage = caller.usage if caller is not None else None
        if usage is not None:
            response["X-RateLimit-Limit"] = str(usage.limit)
            response["X-RateLimit-Remaining"] = str(usage.remaining)
            response["X-RateLimit-Reset"] = str(usage.reset)
        return response

    return around(get_response, lambda request: None, after)
