"""An HTTP server for constrained generation: ``python -m outlines_core.serve [--model PATH]``.

``create_app(model)`` builds the FastAPI app (our ``/generate``, OpenAI-compatible ``/v1/chat/completions``
and ``/v1/completions``, Ollama-compatible ``/api/generate`` and ``/api/chat``); ``BatchingEngine``
(``scheduler.py``) batches concurrent requests on the model, new ones joining a running batch. Needs the ``server``
extra (fastapi, uvicorn). See docs/server.md.
"""

from __future__ import annotations

from .scheduler import BatchingEngine, Request

__all__ = ["BatchingEngine", "Request", "create_app", "load_model", "main"]


def create_app(*args, **kwargs):
    from .app import create_app as _create_app

    return _create_app(*args, **kwargs)


def load_model(path: str | None = None):
    """The default model (SmolLM2-135M-Instruct) or a transformers model folder / hub name."""
    if path is None:
        from backends.transformers import load_default_model

        return load_default_model()
    if path.endswith(".gguf"):
        from backends.llamacpp import from_llamacpp

        import llama_cpp

        return from_llamacpp(llama_cpp.Llama(model_path=path, n_ctx=4096, verbose=False))
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from backends.transformers import from_transformers

    return from_transformers(AutoModelForCausalLM.from_pretrained(path), AutoTokenizer.from_pretrained(path))


def main(argv: list[str] | None = None) -> None:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m outlines_core.serve", description=__doc__)
    parser.add_argument("--model", default=None, help="a transformers model folder, a .gguf file (llama.cpp), or omit for SmolLM2-135M-Instruct")
    parser.add_argument("--model-name", default=None, help="the name clients use (default: the folder name)")
    parser.add_argument("--host", default="127.0.0.1", help="interface to listen on (default: loopback only)")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--max-batch", type=int, default=16, help="requests decoded together at most")
    parser.add_argument("--batch-window-ms", type=float, default=5.0, help="how long the first request of a batch waits for others")
    parser.add_argument("--no-join", action="store_true", help="requests wait for the running batch to end instead of joining it")
    args = parser.parse_args(argv)

    import os

    import uvicorn

    model = load_model(args.model)
    name = args.model_name or (os.path.basename(args.model.rstrip("/")) if args.model else "SmolLM2-135M-Instruct")
    app = create_app(model, model_name=name, max_batch=args.max_batch, window_ms=args.batch_window_ms, continuous=not args.no_join)
    uvicorn.run(app, host=args.host, port=args.port, log_level="info")
