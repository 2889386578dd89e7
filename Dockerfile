FROM python:3.11-slim
WORKDIR /opt/clm
COPY requirements.lock pyproject.toml README.md ./
RUN pip install --no-cache-dir uv==0.13.8 \
 && uv pip install --system --no-cache -r requirements.lock \
 && uv pip install --system --no-cache psycopg2-binary "psycopg[binary]" redis
COPY clm ./clm
COPY training ./training
RUN uv pip install --system --no-cache --no-deps -e .
COPY dags ./dags
COPY plugins ./plugins
COPY feature_repo ./feature_repo
COPY expectations ./expectations
