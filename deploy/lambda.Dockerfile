# The Lambda function's image (deploy/template.yaml builds it with `sam build`).
# Build context: the repository's root.
#   docker build -f deploy/lambda.Dockerfile -t commproc-lambda .
FROM public.ecr.aws/lambda/python:3.12 AS build
WORKDIR /src
COPY pyproject.toml README.md LICENSE ./
COPY src ./src
# Wheels for commproc, its plugins and every dependency, built on the image Lambda runs.
RUN pip wheel --no-cache-dir --wheel-dir /wheels ".[postgres]" ./src/commproc_sms ./src/commproc_email

FROM public.ecr.aws/lambda/python:3.12
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-index --target "${LAMBDA_TASK_ROOT}" /wheels/*.whl && rm -rf /wheels
COPY deploy/lambda/app.py ${LAMBDA_TASK_ROOT}/
CMD ["app.handler"]
