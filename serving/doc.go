// Package serving is the HTTP inference server for trained UNet
// segmentation checkpoints: the last stage of the data flow in docs/architecture.md,
// where the best checkpoint of a job, sweep or model is loaded (LoadModel)
// and hot-swapped in (Server.Swap) whenever a better one lands.
//
// # Routes
//
//	POST /v1/models/NAME:predict  an image in, its class mask out
//	GET  /v1/models               the served model: name, version, input geometry, classes, colours
//	GET  /healthz                 200 while the process serves HTTP
//	GET  /readyz                  200 while a model is loaded and Run has not stopped, else 503
//	GET  /metrics                 Prometheus metrics (trainctl_serving_*)
//
// The web page (WebPage, one self-contained HTML file) is mounted at
// "GET /{$}" with Server.MountWebPage. Every error is JSON {"error":
// "what was wrong", "code": "stable_id"}, and every response carries
// X-Model-Version while a model is loaded.
//
// # Predict
//
// The body is a PNG or JPEG image, sniffed from its bytes (the
// Content-Type header is not trusted), or multipart/form-data with the
// image in the field "image" (or else the first file part). Limits:
// MaxBodyBytes (413 body_too_large) and MaxPixels on the dimensions the
// header declares, checked before decoding any pixel (413
// image_too_large). An empty body is 400 empty_body, a body that is not PNG
// or JPEG 415 unsupported_media_type, a truncated or corrupt image 400
// bad_image, an unknown model name or verb 404, another method than POST
// 405. The image is resized to the model input with bilinear filtering (as
// dataset ingest does), the model runs, and the mask is resized back to
// the image's size by nearest neighbour. With "Accept: image/png" the
// answer is a paletted PNG whose pixel values are the class ids (palette:
// pet red, background black, border yellow, others from a fixed cycle; see
// GET /v1/models); otherwise JSON (PredictResponse) with the mask
// run-length encoded (RLE: class, run length, class, run length, ...
// row-major) and each class's pixel fraction. Both carry X-Model-Name,
// X-Model-Version and X-Latency-Ms.
//
// # Batching, load shedding and hot swap
//
// Decoded requests wait in a queue of QueueSize; when it is full a request
// is answered 503 with Retry-After: 1 at once. The batching loop (Run)
// takes the first waiting request, waits up to MaxWait for others (up to
// MaxBatch, for the same model), runs one forward pass and answers each
// (MaxBatch 1 turns batching off). A request whose client has gone is
// dropped unrun. Each request holds the model it was decoded for until it
// is answered; Swap only redirects new requests, and a swapped-out model
// releases its engine after its last request, so a swap fails no request.
package serving
