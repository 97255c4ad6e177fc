"""Request and response models of the REST API, one module per resource.

Request bodies are the domain's typed models (app/domain/spec.py) plus what only the API
knows (the deployment's limits); responses are plain pydantic models that storage fills.
contract.py refines the OpenAPI document to say what the models alone cannot (per-initializer
parameters, the deployment's limits, the bearer token).
"""
