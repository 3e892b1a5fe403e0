#!/usr/bin/env Rscript
# ML / MLR reference values from R peers for jaxsem's maximum-likelihood
# estimators: lavaan (two-level and single-level SEM, ML and MLR, complete
# data and two-level FIML) and lme4 (linear mixed models, REML = FALSE).
# Outputs are consumed by jaxsem tests, which never need R.
#
# Regenerate (from the repository root; any cwd works):
#   apt-get update && apt-get install -y r-cran-lavaan r-cran-lme4 r-cran-jsonlite
#   .venv/bin/python bench/peers/make_random_slope_csv.py   # data/random_slope_200x50.csv
#   Rscript bench/peers/ml_references.R
#
# Reads  data/Demo.twolevel.csv, data/sleepstudy.csv, data/random_slope_200x50.csv
# Writes data/Demo.twolevel.missing.csv (deterministic, no RNG),
#        outputs/ml_lavaan.json, outputs/ml_lme4.json
# (paths relative to this script). NA is written as null.

suppressPackageStartupMessages({
  library(lavaan)
  library(lme4)
  library(jsonlite)
})

get_script_dir <- function() {
  args <- commandArgs(trailingOnly = FALSE)
  f <- sub("^--file=", "", args[grep("^--file=", args)])
  if (length(f) == 1L) return(dirname(normalizePath(f)))
  getwd()
}
here <- get_script_dir()
out_dir <- file.path(here, "outputs")
data_dir <- file.path(here, "data")
dir.create(out_dir, showWarnings = FALSE, recursive = TRUE)

write_out <- function(x, name) {
  path <- file.path(out_dir, name)
  write_json(x, path, digits = NA, auto_unbox = TRUE, pretty = TRUE,
             null = "null", na = "null")
  cat("wrote", path, "\n")
}

na_null <- function(v) if (length(v) == 1L && is.na(v)) NULL else unname(v)

# ------------------------------------------------------------------ data

demo <- read.csv(file.path(data_dir, "Demo.twolevel.csv"))

# Missing-outcome variant, deterministic: y2 missing where x1 > 1.0, y3
# missing on rows 7, 14, 21, ...; everything else as in Demo.twolevel.
demo_missing <- demo
demo_missing$y2[demo_missing$x1 > 1.0] <- NA
demo_missing$y3[seq(7L, nrow(demo_missing), by = 7L)] <- NA
write.csv(demo_missing, file.path(data_dir, "Demo.twolevel.missing.csv"),
          row.names = FALSE, na = "")

# ------------------------------------------------------------------ lavaan

m_tutorial <- "level: 1\n fw =~ y1 + y2 + y3\n fw ~ x1 + x2 + x3\n level: 2\n fb =~ y1 + y2 + y3\n fb ~ w1 + w2"
m_cfa_1f <- "level: 1\n fw =~ y1 + y2 + y3\n level: 2\n fb =~ y1 + y2 + y3"

# name -> model, data set name, extra sem() arguments (cluster, meanstructure, missing)
lav_models <- list(
  tutorial = list(model = m_tutorial, data = "demo",
                  args = list(cluster = "cluster")),
  cfa_1f = list(model = m_cfa_1f, data = "demo",
                args = list(cluster = "cluster")),
  cfa_equal_loadings = list(
    model = "level: 1\n fw =~ a*y1 + b*y2 + c*y3\n level: 2\n fb =~ a*y1 + b*y2 + c*y3",
    data = "demo", args = list(cluster = "cluster")),
  path_mediation = list(
    model = "level: 1\n y1 ~ x1 + x2\n y2 ~ y1 + x3\n level: 2\n y1 ~ w1\n y2 ~ y1 + w2",
    data = "demo", args = list(cluster = "cluster")),
  cfa_zero_resvar = list(
    model = "level: 1\n f1 =~ y1 + y2 + y3\n f2 =~ y4 + y5 + y6\n level: 2\n fb =~ y1 + y2 + y3 + y4 + y5 + y6\n y1 ~~ 0*y1",
    data = "demo", args = list(cluster = "cluster")),
  single_level_cfa = list(
    model = "f =~ y1 + y2 + y3 + y4", data = "demo",
    args = list(meanstructure = TRUE)),
  cfa_1f_missing = list(model = m_cfa_1f, data = "demo_missing",
                        args = list(cluster = "cluster", missing = "ml")),
  tutorial_missing = list(model = m_tutorial, data = "demo_missing",
                          args = list(cluster = "cluster", missing = "ml"))
)
datasets <- list(demo = demo, demo_missing = demo_missing)
data_files <- list(demo = "data/Demo.twolevel.csv",
                   demo_missing = "data/Demo.twolevel.missing.csv")

# sem() is called directly (not via do.call(sem, ...)): lavaan inspects
# match.call() and fails on an anonymous function object.
run_sem <- function(model, data, args, estimator, conditional.x = FALSE) {
  cl <- args$cluster
  ms <- if (is.null(args$meanstructure)) "default" else args$meanstructure
  miss <- if (is.null(args$missing)) "default" else args$missing
  # Observed information everywhere (lavaan's default for two-level models; Mplus's
  # for MLR) and BFGS run to reltol 1e-15, so that the references are the optimum
  # (gradient about 1e-8): lavaan's default nlminb stops about 1e-3 SE away from it,
  # and nlminb refuses tighter tolerances ("solution has NOT been found").
  sem(model, data = data, cluster = cl, meanstructure = ms, missing = miss,
      estimator = estimator, conditional.x = conditional.x, information = "observed",
      optim.method = "BFGS", control = list(reltol = 1e-15, maxit = 5000))
}

pt_columns <- c("id", "lhs", "op", "rhs", "block", "level", "free", "exo",
                "ustart", "label", "plabel", "est", "se")

partable_rows <- function(fit) {
  pt <- parTable(fit)
  for (col in pt_columns) {
    if (is.null(pt[[col]])) pt[[col]] <- rep(NA, length(pt$id))
  }
  pt <- as.data.frame(pt[pt_columns], stringsAsFactors = FALSE)
  lapply(seq_len(nrow(pt)), function(i) {
    row <- as.list(pt[i, , drop = FALSE])
    lapply(row, function(v) if (is.na(v)) NULL else unname(v))
  })
}

fm_scalar <- c("npar", "logl", "unrestricted.logl", "aic", "bic", "bic2",
               "chisq", "df", "pvalue")
fm_robust <- c("chisq.scaled", "df.scaled", "pvalue.scaled",
               "chisq.scaling.factor", "scaling.factor.h0",
               "scaling.factor.h1")
fm_json_names <- c(unrestricted.logl = "unrestricted_logl",
                   chisq.scaled = "chisq_scaled", df.scaled = "df_scaled",
                   pvalue.scaled = "pvalue_scaled",
                   chisq.scaling.factor = "chisq_scaling_factor",
                   scaling.factor.h0 = "scaling_factor_h0",
                   scaling.factor.h1 = "scaling_factor_h1")
json_name <- function(n) if (n %in% names(fm_json_names)) fm_json_names[[n]] else n

# log-likelihood of the exogenous covariates that lavaan subtracts from the
# joint (y, x) log-likelihood (two-level: YLp[[g]][[2]]$loglik.x; see README)
covariate_loglik <- function(fit) {
  if (fit@Data@nlevels < 2L) return(NULL)
  ylp <- fit@SampleStats@YLp[[1]][[2]]
  Lp <- fit@Data@Lp[[1]]
  list(loglik_x = unname(ylp$loglik.x),
       within_covariates = as.list(fit@Data@ov.names[[1]][Lp$ov.x.idx[[1]]]),
       between_covariates = as.list(fit@Data@ov.names[[1]][Lp$ov.x.idx[[2]]]))
}

# Normal loglik of the covariates alone at the values lavaan fixed them to
# (the exo = 1 rows of the parameter table): within-only covariates iid over
# all rows with the level-1 values, between-only covariates iid over the
# clusters with the level-2 values. With complete data these values are the
# sample statistics and this equals loglik_x; with missing = "ml" lavaan takes
# them from its EM (h1) estimates, which differ slightly.
mvn_loglik <- function(X, mu, S) {
  X <- as.matrix(X)
  D <- sweep(X, 2, mu)
  -0.5 * (nrow(X) * (ncol(X) * log(2 * pi) + as.numeric(determinant(S)$modulus)) +
            sum((D %*% solve(S)) * D))
}
covariate_loglik_at_fixed <- function(fit, data, within_x, between_x) {
  pt <- parTable(fit)
  Lp <- fit@Data@Lp[[1]]
  wonly <- fit@Data@ov.names[[1]][Lp$within.idx[[2]]]
  if (!all(within_x %in% wonly)) return(NULL)  # only within-only covariates handled
  part <- function(vars, blk, X) {
    if (length(vars) == 0L) return(0)
    S <- matrix(NA_real_, length(vars), length(vars), dimnames = list(vars, vars))
    mu <- setNames(rep(NA_real_, length(vars)), vars)
    for (i in which(pt$exo == 1L & pt$block == blk)) {
      if (pt$op[i] == "~~") {
        S[pt$lhs[i], pt$rhs[i]] <- S[pt$rhs[i], pt$lhs[i]] <- pt$est[i]
      } else if (pt$op[i] == "~1") mu[pt$lhs[i]] <- pt$est[i]
    }
    mvn_loglik(X, mu, S)
  }
  cl <- data[[fit@Data@cluster]]
  B <- data[!duplicated(cl), between_x, drop = FALSE]
  part(within_x, 1L, data[, within_x, drop = FALSE]) + part(between_x, 2L, B)
}

fit_lavaan <- function(name, spec, estimator, extra = FALSE) {
  warnings_seen <- character(0)
  elapsed <- NA_real_
  res <- tryCatch(
    withCallingHandlers({
      tm <- system.time(
        fit <- run_sem(spec$model, datasets[[spec$data]], spec$args, estimator))
      elapsed <- round(unname(tm[["elapsed"]]), 3)
      fm <- fitMeasures(fit)
      keep <- c(fm_scalar, if (estimator == "MLR") fm_robust)
      keep <- keep[keep %in% names(fm)]
      out <- list(ok = TRUE,
                  converged = lavInspect(fit, "converged"),
                  iterations = lavInspect(fit, "iterations"),
                  nobs = lavInspect(fit, "nobs"),
                  nclusters = if (fit@Data@nlevels > 1L)
                    fit@Data@Lp[[1]]$nclusters[[2]] else NULL)
      for (k in keep) out[[json_name(k)]] <- na_null(fm[[k]])
      out$npar <- as.integer(out$npar)
      cx <- covariate_loglik(fit)
      if (!is.null(cx) && length(c(cx$within_covariates, cx$between_covariates))) {
        out$loglik_x <- cx$loglik_x
        out$logl_joint_yx <- out$logl + cx$loglik_x
        out$within_covariates <- cx$within_covariates
        out$between_covariates <- cx$between_covariates
        xf <- covariate_loglik_at_fixed(fit, datasets[[spec$data]],
                                        unlist(cx$within_covariates),
                                        unlist(cx$between_covariates))
        if (!is.null(xf)) {
          out$loglik_x_at_fixed_values <- xf
          out$logl_conditional <- out$logl - xf + cx$loglik_x
        }
      }
      if (extra) {
        g <- lavInspect(fit, "gradient")
        out$gradient <- unname(as.numeric(g))
        out$gradient_names <- as.list(names(coef(fit)))
        out$gradient_norm <- sqrt(sum(g^2))
        out$gradient_max_abs <- max(abs(g))
        out$sem_elapsed_seconds <- elapsed
        # median of 5 more fits (after the one above, the warm-up)
        reps <- vapply(1:5, function(i) round(unname(system.time(
          run_sem(spec$model, datasets[[spec$data]], spec$args, estimator)
        )[["elapsed"]]), 3), numeric(1))
        out$sem_elapsed_seconds_repeats <- reps
        out$sem_elapsed_seconds_median5 <- median(reps)
      }
      out$partable <- partable_rows(fit)
      out
    }, warning = function(w) {
      warnings_seen <<- c(warnings_seen, conditionMessage(w))
      invokeRestart("muffleWarning")
    }),
    error = function(e) list(ok = FALSE,
                             error = paste0(deparse(conditionCall(e))[1], ": ",
                                            conditionMessage(e)))
  )
  c(list(model = spec$model, estimator = estimator,
         sem_args = c(list(data = data_files[[spec$data]]), spec$args)),
    res, list(warnings = as.list(unique(warnings_seen))))
}

lavaan_results <- list()
fm_names_printed <- FALSE
for (nm in names(lav_models)) {
  for (est in c("ML", "MLR")) {
    key <- paste0(nm, "_", tolower(est))
    r <- fit_lavaan(nm, lav_models[[nm]], est,
                    extra = (nm == "tutorial" && est == "ML"))
    lavaan_results[[key]] <- r
    if (!fm_names_printed && isTRUE(r$ok) && est == "MLR") {
      fit <- run_sem(lav_models[[nm]]$model, demo, lav_models[[nm]]$args, "MLR")
      cat("names(fitMeasures(<two-level MLR fit>)):\n")
      print(names(fitMeasures(fit)))
      fm_names_printed <- TRUE
    }
    if (isTRUE(r$ok)) {
      cat(sprintf("%-24s %-3s npar=%3d logl=%.6f chisq=%.4f df=%s conv=%s it=%d%s\n",
                  nm, est, r$npar, r$logl,
                  if (is.null(r$chisq)) NA else r$chisq,
                  if (is.null(r$df)) NA else r$df, r$converged, r$iterations,
                  if (est == "MLR" && !is.null(r$chisq_scaling_factor))
                    sprintf(" c=%.4f", r$chisq_scaling_factor) else ""))
    } else {
      cat(sprintf("%-24s %-3s ERROR: %s\n", nm, est, r$error))
    }
    if (length(r$warnings)) cat("   warnings:", unlist(r$warnings), sep = "\n    ")
  }
}

# --- how lavaan's logl treats the fixed.x covariates (see README) ---
# (a) the same models with conditional.x = TRUE (lavaan accepts it for
#     two-level models): logl and estimates should match the fixed.x fits;
# (b) lavaan's own logl of a saturated two-level model for the covariates
#     alone (x1-x3 within-only, w1-w2 between-only), which should equal the
#     loglik_x that lavaan subtracts.
covariate_check <- list()
for (nm in c("tutorial", "path_mediation")) {
  spec <- lav_models[[nm]]
  fx <- run_sem(spec$model, demo, spec$args, "ML")
  cx <- run_sem(spec$model, demo, spec$args, "ML", conditional.x = TRUE)
  covariate_check[[paste0(nm, "_conditional_x")]] <- list(
    model = spec$model,
    sem_args = list(data = "data/Demo.twolevel.csv", cluster = "cluster",
                    estimator = "ML", conditional.x = TRUE),
    conditional_x_option = lavInspect(cx, "options")$conditional.x,
    converged = lavInspect(cx, "converged"),
    npar = as.integer(fitMeasures(cx, "npar")),
    logl = unname(fitMeasures(cx, "logl")),
    unrestricted_logl = unname(fitMeasures(cx, "unrestricted.logl")),
    chisq = unname(fitMeasures(cx, "chisq")),
    logl_fixed_x = unname(fitMeasures(fx, "logl")),
    max_abs_coef_diff_vs_fixed_x = max(abs(coef(cx) - coef(fx))))
}
x_model <- "level: 1\n x1 ~~ x2 + x3\n x2 ~~ x3\n level: 2\n w1 ~~ w2"
xf <- sem(x_model, data = demo, cluster = "cluster")
tut <- run_sem(m_tutorial, demo, list(cluster = "cluster"), "ML")
ylp <- tut@SampleStats@YLp[[1]][[2]]
N <- nrow(demo)
X <- as.matrix(demo[, c("x1", "x2", "x3")])
Wb <- as.matrix(aggregate(demo[, c("w1", "w2")], list(demo$cluster), mean)[, -1])
J <- nrow(Wb)
h1_loglik <- function(S, n) -n / 2 * (ncol(S) * log(2 * pi) + log(det(S)) + ncol(S))
covariate_check$covariates_only_model <- list(
  model = x_model,
  sem_args = list(data = "data/Demo.twolevel.csv", cluster = "cluster"),
  converged = lavInspect(xf, "converged"),
  npar = as.integer(fitMeasures(xf, "npar")),
  logl = unname(fitMeasures(xf, "logl")),
  loglik_x_subtracted_in_tutorial = unname(ylp$loglik.x),
  loglik_x_within_formula = h1_loglik(cov(X) * (N - 1) / N, N),
  loglik_x_between_formula = h1_loglik(cov(Wb) * (J - 1) / J, J))
cat(sprintf("conditional.x=TRUE tutorial logl %.6f (fixed.x %.6f); covariates-only logl %.6f; loglik.x %.6f\n",
            covariate_check$tutorial_conditional_x$logl,
            covariate_check$tutorial_conditional_x$logl_fixed_x,
            covariate_check$covariates_only_model$logl,
            covariate_check$covariates_only_model$loglik_x_subtracted_in_tutorial))

lavaan_notes <- c(
  "Keys are <model>_ml and <model>_mlr (sem(..., estimator = 'ML' / 'MLR'), default options otherwise; two-level models cluster = 'cluster'). NA is written as null.",
  "Covariates (fixed.x = TRUE, the default): lavaan's reported logl (and unrestricted_logl, aic, bic, bic2) is already CONDITIONAL on the exogenous covariates, log f(y | x, w), like Mplus. lav_mvnorm_cluster_loglik_samplestats_2l (and the _missing_ variant) computes the joint two-level loglik of (y, x, w) with the covariate (co)variances/means fixed at their sample values and then subtracts YLp[[2]]$loglik.x = loglik.x.w + loglik.x.b, the saturated normal logliks of the covariates alone: within covariates (x1-x3 are within-only, no between part) over all N rows with their total covariance (divisor N), between covariates (w1, w2) over the J clusters with the covariance of the cluster values (divisor J). Since within-only x has zero between variance and is independent of the between-only w in the model, this is exactly the x-marginal of the joint, so logl = log f(y | x, w) exactly.",
  "Evidence: (1) conditional.x = TRUE is accepted for two-level models and gives the same logl (covariate_check); (2) lavaan's own logl of a saturated model for x1-x3 (level 1) and w1-w2 (level 2) equals loglik_x (-11233.30); (3) an independent implementation of the conditional two-level loglik (bench/peers/numpyro_peers.py twolevel_sem_loglik) evaluated at lavaan's tutorial ML estimates gives -12076.565980, lavaan's logl.",
  "Each fit with covariates records loglik_x (the subtracted term), logl_joint_yx = logl + loglik_x (the joint loglik of y and the covariates, with the covariate moments at lavaan's fixed values), loglik_x_at_fixed_values (the covariates' normal loglik at the values in the exo = 1 rows) and logl_conditional = logl - loglik_x_at_fixed_values + loglik_x, the exact log f(y | x, w) at lavaan's estimates. Complete data: the fixed values are the sample moments, loglik_x_at_fixed_values = loglik_x and logl_conditional = logl (compare a conditional loglik with logl directly).",
  "Missing data (missing = 'ml', two-level): lavaan fixes the covariate moments at its EM estimates of the unrestricted two-level model (not the sample moments; differences up to 1e-3), but still subtracts loglik_x computed from sample moments, so logl is below the exact conditional loglik by loglik_x - loglik_x_at_fixed_values (2.3e-4 for tutorial_missing). Compare a conditional FIML loglik with logl_conditional. Checked by brute force (each cluster's observed y as one multivariate normal given x, w) at lavaan's estimates: -10942.356250 = logl_conditional.",
  "Single-level models with fixed.x = TRUE likewise subtract the covariates' loglik (lav_mvnorm_loglik_samplestats); single_level_cfa here has no covariates.",
  "Two-level MLR with missing = 'ml' fails in lavaan 0.6.14 (lav_model_vcov: eigen() on a non-finite robust covariance matrix); the error is recorded in <model>_mlr. ML with missing = 'ml' (two-level FIML) works.",
  "tutorial_ml carries the gradient at the solution (lavInspect(fit, 'gradient'), in lavaan's free-parameter order) and the elapsed time of sem() (system.time, package loading excluded): the first fit and the median of 5 repeats."
)

lavaan_out <- c(
  list(`_meta` = list(
    lavaan_version = as.character(packageVersion("lavaan")),
    r_version = R.version.string,
    data = list(
      Demo.twolevel = "data/Demo.twolevel.csv: lavaan's Demo.twolevel (GPL), 2500 rows, 200 clusters",
      Demo.twolevel.missing = "data/Demo.twolevel.missing.csv: Demo.twolevel with y2 = NA where x1 > 1.0 and y3 = NA on rows 7, 14, 21, ... (1-based)"),
    n_missing = list(y2 = sum(is.na(demo_missing$y2)),
                     y3 = sum(is.na(demo_missing$y3)),
                     rows_with_any_missing = sum(!complete.cases(demo_missing))),
    generated_by = "bench/peers/ml_references.R",
    notes = as.list(lavaan_notes),
    covariate_check = covariate_check)),
  lavaan_results)
write_out(lavaan_out, "ml_lavaan.json")

# ------------------------------------------------------------------ lme4

sleep <- read.csv(file.path(data_dir, "sleepstudy.csv"))
sleep$Subject <- factor(sleep$Subject)
rs_csv <- file.path(data_dir, "random_slope_200x50.csv")
if (!file.exists(rs_csv)) {
  stop("missing ", rs_csv, ": run .venv/bin/python bench/peers/make_random_slope_csv.py first")
}
rs <- read.csv(rs_csv)
rs$c <- factor(rs$c)

lme4_models <- list(
  sleepstudy = list(formula = Reaction ~ Days + (Days | Subject), data = sleep,
                    file = "data/sleepstudy.csv (lme4::sleepstudy)"),
  random_slope_200x50 = list(formula = y ~ x + (x | c), data = rs,
                             file = "data/random_slope_200x50.csv (numpyro_peers.make_data('random_slope', seed=0))")
)

fit_lme4 <- function(spec) {
  warnings_seen <- character(0)
  res <- withCallingHandlers({
    fit <- lmer(spec$formula, data = spec$data, REML = FALSE)
    reps <- vapply(1:5, function(i) round(unname(system.time(
      lmer(spec$formula, data = spec$data, REML = FALSE))[["elapsed"]]), 3), numeric(1))
    fe <- fixef(fit)
    V <- as.matrix(vcov(fit))
    vc <- VarCorr(fit)[[1]]
    ll <- logLik(fit)
    grp <- names(ngrps(fit))
    optinfo <- fit@optinfo
    list(
      formula = paste(deparse(spec$formula), collapse = ""),
      data = spec$file,
      REML = FALSE,
      fixed_effects = as.list(fe),
      fixed_effects_se = as.list(setNames(sqrt(diag(V)), names(fe))),
      vcov = unname(V),
      vcov_names = names(fe),
      variance_components = list(
        group = grp,
        intercept_variance = unname(vc[1, 1]),
        slope_variance = unname(vc[2, 2]),
        intercept_slope_covariance = unname(vc[1, 2]),
        intercept_slope_correlation = unname(attr(vc, "correlation")[1, 2]),
        residual_variance = sigma(fit)^2,
        residual_sd = sigma(fit),
        names = rownames(vc)),
      theta = unname(getME(fit, "theta")),
      logLik = as.numeric(ll),
      deviance = deviance(fit),
      AIC = AIC(fit),
      BIC = BIC(fit),
      df = as.integer(attr(ll, "df")),
      nobs = nobs(fit),
      ngroups = as.list(ngrps(fit)),
      optimizer = optinfo$optimizer,
      optimizer_return_code = optinfo$conv$opt,
      converged = (optinfo$conv$opt == 0L) && length(optinfo$conv$lme4$messages) == 0L,
      convergence_messages = as.list(optinfo$conv$lme4$messages),
      optimizer_warnings = as.list(unlist(optinfo$warnings)),
      feval = optinfo$feval,
      lmer_elapsed_seconds_repeats = reps,
      lmer_elapsed_seconds_median5 = median(reps),
      lme4_version = as.character(packageVersion("lme4"))
    )
  }, warning = function(w) {
    warnings_seen <<- c(warnings_seen, conditionMessage(w))
    invokeRestart("muffleWarning")
  })
  c(res, list(warnings = as.list(unique(warnings_seen))))
}

lme4_out <- list(`_meta` = list(
  lme4_version = as.character(packageVersion("lme4")),
  r_version = R.version.string,
  generated_by = "bench/peers/ml_references.R",
  notes = list(
    "lmer(..., REML = FALSE) with default control (optimizer nloptwrap). Variance components are variances (VarCorr), residual_variance = sigma(fit)^2. logLik is the ML log-likelihood (no REML), df its number of parameters.",
    "lmer_elapsed_seconds_*: system.time(lmer(...))['elapsed'] of 5 repeats after one warm-up fit, package loading excluded.")))
for (nm in names(lme4_models)) {
  r <- fit_lme4(lme4_models[[nm]])
  lme4_out[[nm]] <- r
  cat(sprintf("%-22s logLik=%.6f AIC=%.4f df=%d fixef=%s conv=%s t=%.3fs\n", nm,
              r$logLik, r$AIC, r$df,
              paste(sprintf("%.5f", unlist(r$fixed_effects)), collapse = ","),
              r$converged, r$lmer_elapsed_seconds_median5))
}
write_out(lme4_out, "ml_lme4.json")
