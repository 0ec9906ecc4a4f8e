//! Every response carries its request's id (`X-Request-Id`), the one the
//! request's log lines carry in their `request_id` field: someone reporting
//! a failed page or API call can quote it, and the operator finds the lines.

use std::future::Future;

use actix_web::dev::{Service, ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::HttpMessage;
use tracing_actix_web::RequestId;

const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Adds `X-Request-Id` to the response (for `App::wrap_fn`, inside
/// `TracingLogger`, which gives the request its id).
pub fn echo<S, B>(
    req: ServiceRequest,
    service: &S,
) -> impl Future<Output = Result<ServiceResponse<B>, actix_web::Error>> + 'static
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error>,
    S::Future: 'static,
{
    let id = req.extensions().get::<RequestId>().copied();
    let response = service.call(req);
    async move {
        let mut response = response.await;
        if let (Ok(response), Some(id)) = (&mut response, id) {
            if let Ok(value) = HeaderValue::from_str(&id.to_string()) {
                response.headers_mut().insert(X_REQUEST_ID, value);
            }
        }
        response
    }
}
