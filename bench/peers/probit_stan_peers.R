#!/usr/bin/env Rscript
# Peer posteriors from Stan (rstan) for two-level probit models with a random
# intercept, with priors that match Mplus's defaults, for checking jaxsem's
# categorical (data-augmentation) Gibbs sampler:
#   probit_ri:  binary u, P(u_ij = 1) = Phi(beta x_ij + a_j - tau1)
#   ordinal_ri: 4 categories, P(u_ij = k) = Phi(tau_{k+1} - eta_ij) -
#               Phi(tau_k - eta_ij), eta_ij = beta x_ij + a_j
#   a_j ~ N(0, psi); within latent-response variance fixed at 1 (probit).
# Priors (Mplus defaults): beta and thresholds flat (no prior statement;
# ordered thresholds for the ordinal model); psi flat on the variance scale
# (IG(-1, 0)), declared real<lower=0> on the variance, no prior statement.
# Random intercepts are centred (a_j ~ normal(0, sqrt(psi))): with 20-30
# observations per cluster this gave higher ESS than non-centred (ordinal,
# short runs: thresholds about 2x, psi about 6x); the posterior is the same.
# Stan programs: stan/probit_ri.stan, stan/ordinal_ri.stan (hand-written).
#
# Regenerate (from the repository root; any cwd works):
#   apt-get update && apt-get install -y r-cran-rstan r-cran-jsonlite \
#     r-cran-posterior libboost-dev
#   .venv/bin/python bench/peers/make_probit_data.py   # writes data/*_ri.csv
#   Rscript bench/peers/probit_stan_peers.R             # both models
#   Rscript bench/peers/probit_stan_peers.R ordinal_ri  # one model
# Options (defaults give the committed outputs):
#   --chains=4 --warmup=2000 --iter=10000 (kept draws per chain)
#   --seed=20251201 --cores=2 --adapt_delta=0.8
#
# Reads data/probit_ri.csv, data/ordinal_ri.csv; writes
# outputs/stan_probit_ri.json, outputs/stan_ordinal_ri.json (paths relative
# to this script).
# Shared rstan helpers (option parsing, sampling, summaries, diagnostics):
# stan_common.R, sourced from this script's folder.

# This script's folder (from Rscript's --file=, else the working directory);
# the shared rstan helpers live next to it in stan_common.R.
here <- local({
  f <- sub("^--file=", "", grep("^--file=", commandArgs(FALSE), value = TRUE))
  if (length(f) == 1L) dirname(normalizePath(f)) else getwd()
})
source(file.path(here, "stan_common.R"))   # loads rstan, jsonlite, posterior
out_dir <- file.path(here, "outputs")
data_dir <- file.path(here, "data")
stan_dir <- file.path(here, "stan")
dir.create(out_dir, showWarnings = FALSE, recursive = TRUE)

# ---- command line -----------------------------------------------------------
all_models <- c("probit_ri", "ordinal_ri")
cli <- parse_peer_args(all_models,
                       list(chains = 4L, warmup = 2000L, iter = 10000L,
                            seed = 20251201L, cores = 2L, adapt_delta = 0.8))
opt <- cli$opt
which_models <- cli$models

setup_rstan()

# ---- data -------------------------------------------------------------------
read_ri <- function(file, K) {
  path <- file.path(data_dir, file)
  if (!file.exists(path))
    stop(path, " not found: run .venv/bin/python bench/peers/make_probit_data.py")
  d <- read.csv(path)
  cl <- as.integer(d$cluster)
  u <- as.integer(d$u)
  stopifnot(all(cl >= 1L), all(u >= 0L), all(u <= K - 1L))
  stan <- list(N = nrow(d), J = max(cl), cl = cl, u = u, x = as.numeric(d$x))
  if (K > 2L) stan$K <- K
  list(stan = stan,
       info = list(file = paste0("data/", file), n_obs = nrow(d),
                   n_clusters = length(unique(cl)),
                   category_counts = as.list(setNames(
                     as.vector(table(factor(u, levels = 0:(K - 1L)))),
                     0:(K - 1L)))))
}

# ---- models -----------------------------------------------------------------
# report name -> Stan parameter name, in output order
specs <- list(
  probit_ri = list(
    stan_file = "probit_ri.stan", data_file = "probit_ri.csv", K = 2L,
    statement = paste(
      "binary probit, random intercept: P(u_ij = 1) = Phi(eta_ij - tau1),",
      "eta_ij = beta x_ij + a_j, a_j ~ N(0, psi); latent response",
      "u*_ij = eta_ij + e_ij, e ~ N(0, 1), u = 1 if u* > tau1;",
      "centred random intercepts"),
    pars = c(beta = "beta", psi = "psi", tau1 = "tau1")),
  ordinal_ri = list(
    stan_file = "ordinal_ri.stan", data_file = "ordinal_ri.csv", K = 4L,
    statement = paste(
      "ordinal probit (categories 0..3), random intercept:",
      "P(u_ij = k) = Phi(tau_{k+1} - eta_ij) - Phi(tau_k - eta_ij),",
      "tau_0 = -inf, tau_4 = +inf, eta_ij = beta x_ij + a_j, a_j ~ N(0, psi);",
      "latent response variance 1; centred random intercepts"),
    pars = c(beta = "beta", psi = "psi", tau1 = "tau[1]", tau2 = "tau[2]",
             tau3 = "tau[3]"))
)

priors_text <- paste(
  "Mplus defaults: beta flat (no prior statement); thresholds flat (no prior",
  "statement; ordered[K-1] for the ordinal model, plain real for the binary);",
  "between variance psi flat on the variance scale (IG(-1,0)): declared",
  "real<lower=0> psi, no prior statement, a ~ normal(0, sqrt(psi)) is the",
  "random-intercept distribution (part of the model, not a prior)")

# ---- run one model ------------------------------------------------------------
run_model <- function(name) {
  spec <- specs[[name]]
  run <- compile_and_sample(name, stan_dir, spec$stan_file,
                            function() read_ri(spec$data_file, spec$K), opt)
  dat <- run$dat
  post <- summarise_posterior(run$fit, spec$pars)
  summ <- post$summ
  params <- post$params
  diag <- sampler_diagnostics(run$fit)
  ok_rhat <- all(summ$rhat < 1.01)
  ok_ess <- all(summ$ess_bulk > 2000)

  res <- list(
    model = name,
    model_statement = spec$statement,
    priors = priors_text,
    stan_file = file.path("bench/peers/stan", spec$stan_file),
    stan_program = run$prog,
    data = dat$info,
    data_file = dat$info$file,
    n_obs = dat$info$n_obs,
    n_clusters = dat$info$n_clusters)
  res <- c(res, run_fields(opt, diag, summ), list(
    checks = list(rhat_below_1.01 = ok_rhat, ess_bulk_above_2000 = ok_ess),
    seconds = list(compile = run$t_compile, sample = run$t_sample),
    parameters = params
  ))
  out_file <- write_peer_json(res, out_dir, name, diag, summ, run$t_sample)
  if (!ok_rhat || !ok_ess)
    warning(name, ": convergence check failed (need rhat < 1.01, ess_bulk > 2000)")
  tab <- data.frame(parameter = names(spec$pars),
                    mean = sapply(params, `[[`, "mean"),
                    sd = sapply(params, `[[`, "sd"),
                    mcse_mean = sapply(params, `[[`, "mcse_mean"),
                    q2.5 = sapply(params, `[[`, "q2.5"),
                    q97.5 = sapply(params, `[[`, "q97.5"),
                    rhat = sapply(params, `[[`, "rhat"),
                    ess_bulk = sapply(params, `[[`, "ess_bulk"))
  rownames(tab) <- NULL
  print(tab, digits = 5)
  cat("wrote", out_file, "\n")
  invisible(res)
}

for (m in which_models) run_model(m)
