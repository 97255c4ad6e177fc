# One Dockerfile, two images; docker-compose picks the target and the command.
#   cpu: the API, migrations and CPU workers (Keras on TensorFlow for the CPU); the default target.
#   gpu: workers on NVIDIA GPUs (Keras on JAX with its CUDA 12 wheels, which bring CUDA and cuDNN
#        as pip packages: the host needs only the NVIDIA driver and container toolkit).
FROM python:3.11-slim AS cpu

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    TF_CPP_MIN_LOG_LEVEL=2 \
    INITLAB_STATE_DIR=/var/lib/initlab INITLAB_DATA_DIR=/data

WORKDIR /app
COPY pyproject.toml README.md alembic.ini ./
COPY app ./app
COPY worker ./worker
COPY frontend ./frontend
COPY migrations ./migrations
RUN pip install --no-cache-dir -e . && mkdir -p /var/lib/initlab /data

EXPOSE 8000
CMD ["initlab", "api", "--host", "0.0.0.0", "--port", "8000"]

FROM cpu AS gpu
# JAX is the GPU path; each worker process allocates device memory as it goes (app/launch.py).
ENV INITLAB_KERAS_BACKEND=jax XLA_PYTHON_CLIENT_PREALLOCATE=false
RUN pip install --no-cache-dir "jax[cuda12]>=0.4.30"
# `docker compose run --rm worker python bench/gpu_check.py` checks the device (numpy, JAX, Keras only).
COPY bench ./bench
CMD ["initlab", "worker", "--gpus", "0"]
